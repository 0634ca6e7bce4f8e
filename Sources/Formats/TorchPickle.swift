import Foundation
import TensorCore

// A restricted unpickler for the pickles `torch.save` writes for state dicts (protocol 2).
// It is a data parser, not a virtual machine: the only "callables" it knows are the handful of
// globals a state dict refers to, and for each of them it builds a plain value itself. Every
// other global is refused when it is named (GLOBAL), before anything could use it, with its
// module and name in the error. Nothing from the file is ever executed or looked up by name.

/// Element types of the torch storages a state dict may hold (`torch.<Name>Storage`).
public enum TorchDType: String, Sendable, CaseIterable {
    case float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage", float64 = "DoubleStorage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage", uint8 = "ByteStorage"
    case bool = "BoolStorage"

    public var byteSize: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// The engine's element encoding of this storage type.
    var stored: StoredElement {
        switch self {
        case .float32: .float32
        case .float16: .float16
        case .bfloat16: .bfloat16
        case .float64: .float64
        case .int64: .int64
        case .int32: .int32
        case .int16: .int16
        case .int8: .int8
        case .uint8: .uint8
        case .bool: .bool
        }
    }
}

/// A tensor as the pickle describes it (`torch._utils._rebuild_tensor_v2`): a view into one
/// storage record. Not materialised until asked for (`TorchArchive.tensor`).
public struct TorchTensorRef: Sendable, Equatable {
    public let storageKey: String
    public let dtype: TorchDType
    /// Elements in the storage record.
    public let storageCount: Int
    public let offset: Int
    public let shape: [Int]
    public let strides: [Int]
    public var count: Int { shape.reduce(1, *) }

    /// Whether the view is the plain row-major layout.
    public var isContiguous: Bool {
        var expected = 1
        for (n, s) in zip(shape, strides).reversed() where n != 1 {
            if s != expected { return false }
            expected *= n
        }
        return true
    }
}

/// A value of the pickle, as plain data.
public indirect enum PickleValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([PickleValue])
    case tuple([PickleValue])
    /// Keys in insertion order (dict and collections.OrderedDict alike).
    case dict([(key: PickleValue, value: PickleValue)])
    case tensor(TorchTensorRef)

    public static func == (a: PickleValue, b: PickleValue) -> Bool {
        switch (a, b) {
        case (.none, .none): true
        case let (.bool(x), .bool(y)): x == y
        case let (.int(x), .int(y)): x == y
        case let (.float(x), .float(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)): x == y
        case let (.dict(x), .dict(y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.tensor(x), .tensor(y)): x == y
        default: false
        }
    }

    /// The value under a string key of a dict.
    public subscript(key: String) -> PickleValue? {
        guard case .dict(let entries) = self else { return nil }
        return entries.first { $0.key == .string(key) }?.value
    }

    var typeName: String {
        switch self {
        case .none: "None"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .tensor: "tensor"
        }
    }
}

/// The unpickler. `storage` resolves a persistent id (dtype, key, element count) against the
/// archive, checking the declared size; it is called once per storage key.
struct RestrictedUnpickler {
    /// Globals a state dict needs, by "module name".
    enum Global {
        case orderedDict, rebuildTensor, rebuildParameter
        case storageType(TorchDType)

        static func named(_ module: String, _ name: String) -> Global? {
            switch (module, name) {
            case ("collections", "OrderedDict"): .orderedDict
            case ("torch._utils", "_rebuild_tensor_v2"): .rebuildTensor
            case ("torch._utils", "_rebuild_parameter"): .rebuildParameter
            case ("torch", _): TorchDType(rawValue: name).map { .storageType($0) }
            default: nil
            }
        }
    }

    struct Storage { let dtype: TorchDType; let key: String; let count: Int }

    /// Mutable containers while parsing: APPEND/SETITEMS modify an object that the memo may also
    /// hold, so lists and dicts must be shared, not copied. `height` is 1 + the largest height of
    /// the items inside (values count 0). `placed` is set once the container is put inside another
    /// one; from then on it may not change, so the heights recorded above it stay true.
    final class ListBox { var items: [Item] = []; var height = 1; var placed = false }
    final class DictBox { var keys: [Item] = []; var values: [Item] = []; var height = 1; var placed = false }

    indirect enum Item {
        case value(PickleValue)  // scalars, strings, tensors
        case tuple([Item], height: Int)
        case list(ListBox)
        case dict(DictBox)
        case global(Global)
        case storage(Storage)
        case mark

        /// How deeply containers nest below and including this item (O(1): stored at build).
        var height: Int {
            switch self {
            case .tuple(_, let h): h
            case .list(let l): l.height
            case .dict(let d): d.height
            default: 0
            }
        }
    }

    /// Bounds on what a pickle may build, checked as each opcode runs: containers nested more
    /// than `maxDepth` deep (APPEND, SETITEM(S), TUPLE*, LIST, DICT alike) and more than
    /// `maxObjects` pushes are refused. The depth bound keeps every later walk of the values
    /// (conversion, comparison, and Swift's release of nested arrays, which recurses once per
    /// level) within a few hundred frames (a 30 000-deep list would overflow the stack when
    /// freed). `maxNodes` bounds the conversion to plain values,
    /// where memo sharing can make the tree exponentially larger than the file.
    static let maxDepth = 200
    static let maxNodes = 2_000_000
    static let maxObjects = 2_000_000

    let bytes: [UInt8]
    let storage: (TorchDType, String, Int) throws -> Void
    let fail: (String) -> TorchFormatError

    /// Runs the pickle to its STOP. One function with one switch over the opcodes (longer than
    /// our usual limit): each case is a line or two, and the stack, memo and position they share
    /// would otherwise have to be threaded through a dozen helpers.
    func run() throws -> PickleValue {
        var stack: [Item] = []
        var memo: [Int: Item] = [:]
        var storages: [String: Storage] = [:]
        var pos = 0
        var pushes = 0
        /// Pushes `item`, counting it against `maxObjects`.
        func push(_ item: Item) throws {
            pushes += 1
            guard pushes <= Self.maxObjects else {
                throw fail("data.pkl builds more than \(Self.maxObjects) objects (at byte \(pos)); a state dict needs far fewer, refused")
            }
            stack.append(item)
        }
        /// The height of a new container holding `children`, after sealing the children's boxes.
        func contain(_ children: [Item], at: Int) throws -> Int {
            var h = 0
            for c in children {
                switch c {
                case .list(let l): l.placed = true
                case .dict(let d): d.placed = true
                default: break
                }
                h = max(h, c.height)
            }
            guard h + 1 < Self.maxDepth else {
                throw fail("data.pkl nests containers more than \(Self.maxDepth - 1) deep (byte \(at)); a state dict nests a few levels, refused")
            }
            return h + 1
        }
        /// Refuses to change a list or dict that is already inside another container (checked
        /// after `contain` sealed the new children, so appending a list to itself is refused too).
        func mayChange(_ placed: Bool, at: Int) throws {
            guard !placed else {
                throw fail(
                    "data.pkl changes a list or dict at byte \(at) after placing it inside another container (a self-referencing structure); not a state dict, refused"
                )
            }
        }
        func need(_ n: Int) throws -> [UInt8] {
            guard n >= 0, n <= bytes.count - pos else { throw fail("data.pkl ends inside an opcode at byte \(pos) (truncated pickle)") }
            defer { pos += n }
            return Array(bytes[pos..<(pos + n)])
        }
        func le(_ n: Int) throws -> UInt64 {
            let b = try need(n)
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(b[i]) << (8 * i) }
            return v
        }
        func pop() throws -> Item {
            guard let top = stack.popLast() else { throw fail("pickle stack underflow at byte \(pos)") }
            if case .mark = top { throw fail("pickle pops a MARK as a value at byte \(pos)") }
            return top
        }
        func popToMark() throws -> [Item] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { true } else { false } }) else {
                throw fail("pickle opcode at byte \(pos) needs a MARK that is not on the stack")
            }
            let items = Array(stack[(m + 1)...])
            stack.removeSubrange(m...)
            return items
        }
        func string(_ n: Int) throws -> String {
            let b = try need(n)
            guard let s = String(validating: b, as: UTF8.self) else { throw fail("string at byte \(pos - n) of data.pkl is not valid UTF-8") }
            return s
        }
        while true {
            let at = pos
            let op = try need(1)[0]
            switch op {
            case 0x80:  // PROTO
                let v = try need(1)[0]
                guard v <= 2 else { throw fail("pickle protocol \(v); torch.save writes protocol 2, and only protocols up to 2 are read") }
            case 0x2E:  // STOP
                guard stack.count == 1 else { throw fail("pickle stops with \(stack.count) values on the stack, expected 1") }
                var nodes = 0
                return try plain(stack[0], depth: 0, nodes: &nodes)
            case 0x28: try push(.mark)  // MARK
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x32: let v = try pop(); try push(v); try push(v)  // DUP
            case 0x4E: try push(.value(.none))  // NONE
            case 0x88: try push(.value(.bool(true)))  // NEWTRUE
            case 0x89: try push(.value(.bool(false)))  // NEWFALSE
            case 0x4B: try push(.value(.int(Int(try le(1)))))  // BININT1
            case 0x4D: try push(.value(.int(Int(try le(2)))))  // BININT2
            case 0x4A: try push(.value(.int(Int(Int32(truncatingIfNeeded: try le(4))))))  // BININT
            case 0x8A, 0x8B:  // LONG1, LONG4
                let n = Int(try le(op == 0x8A ? 1 : 4))
                guard n <= 8 else { throw fail("integer of \(n) bytes at byte \(at) does not fit 64 bits") }
                var v = try le(n)
                if n > 0, n < 8, v & (1 << (8 * n - 1)) != 0 { v |= ~0 << (8 * n) }  // sign-extend
                try push(.value(.int(Int(Int64(bitPattern: v)))))
            case 0x47:  // BINFLOAT (big-endian)
                let b = try need(8)
                var bits: UInt64 = 0
                for i in 0..<8 { bits = bits << 8 | UInt64(b[i]) }
                try push(.value(.float(Double(bitPattern: bits))))
            case 0x58: try push(.value(.string(try string(Int(try le(4))))))  // BINUNICODE
            case 0x55: try push(.value(.string(try string(Int(try le(1))))))  // SHORT_BINSTRING
            case 0x54: try push(.value(.string(try string(Int(Int32(truncatingIfNeeded: try le(4)))))))  // BINSTRING
            case 0x29: try push(.tuple([], height: 1))  // EMPTY_TUPLE
            case 0x74: let t = try popToMark(); try push(.tuple(t, height: try contain(t, at: at)))  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1-3
                let n = Int(op - 0x84)
                var items: [Item] = []
                for _ in 0..<n { items.insert(try pop(), at: 0) }
                try push(.tuple(items, height: try contain(items, at: at)))
            case 0x5D: try push(.list(ListBox()))  // EMPTY_LIST
            case 0x6C:  // LIST
                let l = ListBox()
                l.items = try popToMark()
                l.height = try contain(l.items, at: at)
                try push(.list(l))
            case 0x61, 0x65:  // APPEND, APPENDS
                let items = op == 0x61 ? [try pop()] : try popToMark()
                guard case .list(let l)? = stack.last else { throw fail("APPEND at byte \(at) onto a non-list") }
                let h = try contain(items, at: at)
                try mayChange(l.placed, at: at)
                l.height = max(l.height, h)
                l.items += items
            case 0x7D: try push(.dict(DictBox()))  // EMPTY_DICT
            case 0x64, 0x73, 0x75:  // DICT, SETITEM, SETITEMS
                let items: [Item] = op == 0x73 ? Array([try pop(), try pop()].reversed()) : try popToMark()
                guard items.count % 2 == 0 else { throw fail("odd number of dict items at byte \(at)") }
                let d: DictBox
                if op == 0x64 {
                    d = DictBox()
                } else {
                    guard case .dict(let top)? = stack.last else { throw fail("SETITEM at byte \(at) onto a non-dict") }
                    d = top
                }
                let h = try contain(items, at: at)
                try mayChange(d.placed, at: at)
                d.height = max(d.height, h)
                for i in stride(from: 0, to: items.count, by: 2) { d.keys.append(items[i]); d.values.append(items[i + 1]) }
                if op == 0x64 { try push(.dict(d)) }
            case 0x71, 0x72:  // BINPUT, LONG_BINPUT
                let k = Int(try le(op == 0x71 ? 1 : 4))
                guard let top = stack.last else { throw fail("PUT at byte \(at) with an empty stack") }
                memo[k] = top
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let k = Int(try le(op == 0x68 ? 1 : 4))
                guard let v = memo[k] else { throw fail("GET of memo \(k) at byte \(at), which was never stored") }
                try push(v)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(&pos, at), name = try line(&pos, at)
                guard let g = Global.named(module, name) else {
                    throw fail(
                        "data.pkl refers to the global \(module).\(name) (byte \(at)), which a state dict never needs; refused, nothing was executed (allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.<Float|Half|BFloat16|Double|Long|Int|Short|Char|Byte|Bool>Storage)"
                    )
                }
                try push(.global(g))
            case 0x51:  // BINPERSID
                let pid = try pop()
                let s = try persistentStorage(pid, at: at)
                if let seen = storages[s.key] {
                    guard seen.dtype == s.dtype, seen.count == s.count else {
                        throw fail("storage \"\(s.key)\" is declared twice with different types or sizes")
                    }
                } else {
                    try storage(s.dtype, s.key, s.count)
                    storages[s.key] = s
                }
                try push(.storage(s))
            case 0x62:  // BUILD
                // torch pickles a module's state_dict() as an OrderedDict whose `_metadata`
                // attribute (per-module versions) arrives as BUILD state. Only that is accepted,
                // and the state is dropped: it carries no weights.
                let state = try pop()
                guard case .dict? = stack.last else { throw fail("BUILD at byte \(at) on something other than a dict; refused") }
                switch state {
                case .dict, .value(.none): break
                case .tuple(let t, _) where t.allSatisfy({ if case .dict = $0 { true } else if case .value(.none) = $0 { true } else { false } }):
                    break
                default: throw fail("BUILD at byte \(at) with a state that is not a dict; refused")
                }
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                try push(try reduce(callable, args, at: at))
            default:
                throw fail(
                    String(
                        format: "unsupported pickle opcode 0x%02x at byte %d of data.pkl (a state dict needs only protocol-2 data opcodes)", op, at))
            }
        }
    }

    /// A newline-terminated ASCII line of at most 200 bytes (GLOBAL operands).
    private func line(_ pos: inout Int, _ at: Int) throws -> String {
        var end = pos
        while end < bytes.count, bytes[end] != 0x0A, end - pos < 200 { end += 1 }
        guard end < bytes.count, bytes[end] == 0x0A else { throw fail("malformed GLOBAL operand at byte \(at)") }
        let s = String(decoding: bytes[pos..<end], as: UTF8.self)
        pos = end + 1
        return s
    }

    /// ('storage', torch.<T>Storage, key, location, count): torch's `persistent_id` for storages.
    private func persistentStorage(_ pid: Item, at: Int) throws -> Storage {
        guard case .tuple(let t, _) = pid, t.count == 5, case .value(.string("storage")) = t[0] else {
            throw fail("persistent id at byte \(at) is not ('storage', type, key, location, size)")
        }
        guard case .global(.storageType(let dtype)) = t[1] else { throw fail("persistent id at byte \(at) has no torch storage type") }
        guard case .value(.string(let key)) = t[2], !key.isEmpty, !key.contains("/"), !key.contains("..") else {
            throw fail("persistent id at byte \(at) has a bad storage key")
        }
        guard case .value(.int(let count)) = t[4], count >= 0 else { throw fail("storage \"\(key)\" has a negative or missing size") }
        return Storage(dtype: dtype, key: key, count: count)
    }

    private func reduce(_ callable: Item, _ args: Item, at: Int) throws -> Item {
        guard case .tuple(let a, _) = args else { throw fail("REDUCE at byte \(at) with non-tuple arguments") }
        guard case .global(let g) = callable else { throw fail("REDUCE at byte \(at) calls something that is not an allowed global") }
        switch g {
        case .orderedDict:
            guard a.isEmpty else { throw fail("collections.OrderedDict called with arguments at byte \(at); only OrderedDict() is read") }
            return .dict(DictBox())
        case .rebuildParameter:
            guard a.count >= 1, case .value(.tensor) = a[0] else { throw fail("_rebuild_parameter at byte \(at) without a tensor") }
            return a[0]
        case .storageType(let t):
            throw fail("torch.\(t.rawValue) called at byte \(at); storages are read through persistent ids only")
        case .rebuildTensor:
            return .value(.tensor(try rebuildTensor(a, at: at)))
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    /// The view must lie inside its storage (checked with overflow-safe arithmetic).
    private func rebuildTensor(_ a: [Item], at: Int) throws -> TorchTensorRef {
        guard a.count == 6 || a.count == 7, case .storage(let s) = a[0], case .value(.int(let offset)) = a[1],
            case .tuple(let sizeItems, _) = a[2], case .tuple(let strideItems, _) = a[3]
        else {
            throw fail("_rebuild_tensor_v2 at byte \(at) with unexpected arguments")
        }
        func ints(_ items: [Item]) -> [Int]? {
            var out: [Int] = []
            for item in items {
                guard case .value(.int(let v)) = item, v >= 0 else { return nil }
                out.append(v)
            }
            return out
        }
        guard let shape = ints(sizeItems), let strides = ints(strideItems), shape.count == strides.count, shape.count <= 16, offset >= 0 else {
            throw fail("tensor at byte \(at) (storage \"\(s.key)\") has a bad shape \(sizeItems.count)/stride \(strideItems.count)/offset")
        }
        var count = 1, last = offset
        for (n, st) in zip(shape, strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            let (span, o2) = (n == 0 ? 0 : n - 1).multipliedReportingOverflow(by: st)
            let (l, o3) = last.addingReportingOverflow(span)
            guard !o1, !o2, !o3 else { throw fail("tensor of shape \(shape) strides \(strides) overflows") }
            count = c
            last = l
        }
        // More elements than the storage holds needs overlapping (e.g. stride-0, expanded) views,
        // which state dicts do not use; refusing them bounds every allocation by the file size.
        if count > s.count {
            throw fail(
                "tensor of shape \(shape) has \(count) elements but its storage \"\(s.key)\" holds \(s.count) (an expanded, overlapping view); refused"
            )
        }
        if count > 0, last >= s.count {
            throw fail(
                "tensor of shape \(shape), strides \(strides), offset \(offset) reaches element \(last) of storage \"\(s.key)\", which holds \(s.count)"
            )
        }
        return TorchTensorRef(storageKey: s.key, dtype: s.dtype, storageCount: s.count, offset: offset, shape: shape, strides: strides)
    }

    /// The shared parse graph as plain values, with the depth and size budget.
    private func plain(_ item: Item, depth: Int, nodes: inout Int) throws -> PickleValue {
        nodes += 1
        guard depth < Self.maxDepth, nodes < Self.maxNodes else {
            throw fail(
                "pickle nests deeper than \(Self.maxDepth) or expands to more than \(Self.maxNodes) values (self-referencing or shared containers); not a state dict"
            )
        }
        switch item {
        case .value(let v): return v
        case .tuple(let items, _): return .tuple(try items.map { try plain($0, depth: depth + 1, nodes: &nodes) })
        case .list(let l): return .list(try l.items.map { try plain($0, depth: depth + 1, nodes: &nodes) })
        case .dict(let d):
            var out: [(key: PickleValue, value: PickleValue)] = []
            for (k, v) in zip(d.keys, d.values) {
                out.append((try plain(k, depth: depth + 1, nodes: &nodes), try plain(v, depth: depth + 1, nodes: &nodes)))
            }
            return .dict(out)
        case .global: throw fail("a bare global is left in the unpickled data; not a state dict")
        case .storage(let s): throw fail("a bare storage \"\(s.key)\" (not inside a tensor) is left in the unpickled data")
        case .mark: throw fail("a MARK is left in the unpickled data")
        }
    }
}
