import Foundation

/// The DVT layer's one error type (stage 1, stage 2, SRT, the denoiser, metrics, visuals). The
/// message names the file, key or shape at fault.
public struct DVTError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

// The names each part of the layer throws under; all are `DVTError`.
public typealias Stage1Error = DVTError
public typealias Stage2Error = DVTError
public typealias SRTError = DVTError
public typealias DenoiserError = DVTError
public typealias ArtifactMetricsError = DVTError
public typealias VisualsError = DVTError
