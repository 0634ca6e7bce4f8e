import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import Training
import Vision

/// Which slice of the image list this process handles.
public struct ShardSpec: Sendable, Equatable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// `K/N` (0-based K).
    public static func parse(_ s: String) throws -> ShardSpec {
        let parts = s.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, k >= 0, k < n else {
            throw ConfigError("--shard must be K/N with 0 <= K < N, got '\(s)'")
        }
        return ShardSpec(index: k, count: n)
    }

    /// From the scheduler's environment: Slurm array jobs (SLURM_ARRAY_TASK_ID, _MIN, _COUNT) or
    /// Kubernetes indexed jobs (JOB_COMPLETION_INDEX with DVT_NUM_SHARDS).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> ShardSpec? {
        if let id = env["SLURM_ARRAY_TASK_ID"].flatMap(Int.init), let n = env["SLURM_ARRAY_TASK_COUNT"].flatMap(Int.init) {
            let lo = env["SLURM_ARRAY_TASK_MIN"].flatMap(Int.init) ?? 0
            guard n >= 1, id - lo >= 0, id - lo < n else {
                throw ConfigError("Slurm array task \(id) (min \(lo), count \(n)) does not give a valid shard")
            }
            return ShardSpec(index: id - lo, count: n)
        }
        if let k = env["JOB_COMPLETION_INDEX"].flatMap(Int.init) {
            guard k >= 0 else {
                throw ConfigError("JOB_COMPLETION_INDEX=\(k) is negative; Kubernetes indexed jobs count completions from 0")
            }
            guard let n = env["DVT_NUM_SHARDS"].flatMap(Int.init), n > k else {
                throw ConfigError("JOB_COMPLETION_INDEX=\(k) is set but DVT_NUM_SHARDS (the number of completions) is missing or <= \(k)")
            }
            return ShardSpec(index: k, count: n)
        }
        return nil
    }
}
