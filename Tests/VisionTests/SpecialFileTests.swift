import Formats
import Foundation
import TestSupport
import Testing
import Vision

/// Issue 18, item 8: a FIFO named like an image or a checkpoint hung the tool forever, because it
/// was opened for reading before its type was checked. Each reader must refuse it at once.
@Suite("Special files")
struct SpecialFileTests {
    func fifo(_ name: String) throws -> URL {
        let dir = temporaryDirectory("special")
        let url = dir.appendingPathComponent(name)
        #expect(mkfifo(url.path, 0o600) == 0)
        return url
    }

    @Test("images, safetensors and npy readers refuse a FIFO without blocking")
    func fifos() throws {
        let jpg = try fifo("p.jpg"), st = try fifo("w.safetensors"), npy = try fifo("f.npy")
        defer { for u in [jpg, st, npy] { try? FileManager.default.removeItem(at: u.deletingLastPathComponent()) } }
        #expect { _ = try RGBImage(contentsOf: jpg) } throws: { "\($0)".contains("FIFO") && "\($0)".contains("p.jpg") }
        #expect { _ = try SafeTensorsFile(url: st) } throws: { "\($0)".contains("FIFO") && "\($0)".contains("w.safetensors") }
        #expect { _ = try Npy.read(npy) } throws: { "\($0)".contains("FIFO") && "\($0)".contains("f.npy") }
    }

    @Test("FileKind tells regular files, directories, devices and missing paths apart")
    func kinds() throws {
        let f = temporaryDirectory("kind").appendingPathComponent("file")
        try Data([1, 2, 3]).write(to: f)
        defer { try? FileManager.default.removeItem(at: f.deletingLastPathComponent()) }
        #expect(FileKind.of(f.path) == .regular(size: 3))
        #expect(FileKind.of(FileManager.default.temporaryDirectory.path) == .directory)
        #expect(FileKind.of("/dev/zero") == .device)
        #expect(FileKind.of("/nonexistent/x") == .missing)
    }
}
