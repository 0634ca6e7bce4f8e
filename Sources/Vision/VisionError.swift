import Foundation

/// The Vision layer's one error type (images, the ViT, weight files). The message names the
/// file, key or shape at fault.
public struct VisionError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    /// An image file or buffer that cannot be read, decoded or written: "image PATH: MESSAGE".
    public init(path: String, message: String) { description = "image \(path): \(message)" }
    public var errorDescription: String? { description }
}

// The names each part of the layer throws under; all are `VisionError`.
public typealias ImageError = VisionError
public typealias ViTError = VisionError
public typealias WeightFileError = VisionError
