import Foundation

/// The Jobs layer's one error type: each case's text names the file, list entry or setting.
public enum JobsError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// An input list, folder or entry that cannot be used.
    case input(String)
    /// Two things that must agree do not (a denoiser and a backbone, a run folder and a config).
    case mismatch(String)
    /// A job finished but these inputs failed (the summary listed them): a non-zero exit status.
    case imagesFailed([JobFailure])
    /// `dvt run` finished but left these images out.
    case incomplete([JobFailure])

    public var description: String {
        switch self {
        case .input(let s), .mismatch(let s): return s
        case .imagesFailed(let f): return "\(f.count) image(s) failed"
        case .incomplete(let f):
            return "\(f.count) image(s) failed and were left out (the rest of the run is complete; fix them and rerun):\n"
                + f.map { "  FAILED \($0.image): \($0.error)" }.joined(separator: "\n")
        }
    }

    public var errorDescription: String? { description }
}
