import COneDNN
import Foundation

// The engine's matrix products through oneDNN's matmul primitive (BLAS.gemm's default backend).
//
// Transposes are memory strides, never copies: a row-major (M, K) operand with leading
// dimension lda has strides (lda, 1), its transpose stored (K, M) has strides (1, lda).
// alpha is the primitive's output scale and beta the sum post-op, so C = alpha·op(A)op(B) + beta·C
// in one pass (beta = 1 accumulates straight into gradient buffers).
//
// Threading: Debian's libdnnl is built with the OpenMP runtime (dnnl_config.h:
// DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP). oneDNN sizes its parallel region from the calling
// thread's omp_get_max_threads(), so every thread that calls in is set to one OpenMP thread and
// the engine splits large products over its own Dispatch workers (BLAS.gemm), as it did for
// OpenBLAS: one pool for the process, and no libgomp team spinning while Dispatch works.

enum OneDNN {
    /// A created primitive and the memory descriptors its arguments are bound with.
    final class Entry: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        var src = dnnl_memory_desc_t(), weights = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
        /// The primitive's scratchpad (user mode, see `create`); size 0 when it needs none.
        var scratch = dnnl_memory_desc_t()
        var scratchBytes = 0
        /// (1, N) fp32 bias, for primitives created with `Key.bias`.
        var bias = dnnl_memory_desc_t()
        /// The second operands of the binary post-ops (`Key.scaleColumns`, `Key.residual`), in
        /// post-op order, with their positions in the post-op chain.
        var binary: [(index: Int, desc: dnnl_memory_desc_t)] = []
        init(primitive: dnnl_primitive_t) { self.primitive = primitive }
    }

    /// Everything that selects a primitive: shape, layout (strides), alpha, beta, data type.
    struct Key: Hashable {
        var transA: Bool, transB: Bool
        var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        var alpha: UInt32, beta: UInt32
        var bf16: Bool
        /// Weights in the layout the primitive prefers (`format_tag::any`; `Entry.weights` is
        /// then that blocked layout, and callers pass weights reordered into it once,
        /// MatMulPrepared.swift) instead of plain strides copied into it on every call.
        var preparedWeights = false
        /// An fp32 bias (1, N) added by the primitive (DNNL_ARG_BIAS).
        var bias = false
        /// Exact (erf) GELU applied to the result as an eltwise post-op (`Tensor.linearGELU`).
        var gelu = false
        /// C written as bf16 (rounded to nearest even) instead of fp32 (`Tensor.mlpGELU`'s hidden).
        var dstBF16 = false
        /// C multiplied column by column by an fp32 (1, N) vector (a layer scale γ), then, with
        /// `residual`, an fp32 (M, N) matrix (leading dimension N) added: C = r + (AB + bias)·γ,
        /// each step rounded to fp32 as the separate passes round (binary post-ops after the
        /// bias and any GELU; `Tensor.residual`'s arithmetic).
        var scaleColumns = false
        var residual = false
    }

    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        return e!
    }()

    nonisolated(unsafe) private static var cache: [Key: Entry] = [:]
    private static let lock = NSLock()

    /// Primitives are created once per key and kept for the process (they are small, and ViT
    /// and denoiser shapes repeat every step). Creation happens outside the lock; when two
    /// threads race for one key, the loser's primitive is destroyed.
    static func entry(_ key: Key) -> Entry {
        lock.lock()
        if let e = cache[key] { lock.unlock(); return e }
        lock.unlock()
        let made = create(key)
        lock.lock()
        defer { lock.unlock() }
        if let e = cache[key] { dnnl_primitive_destroy(made.primitive); return e }
        cache[key] = made
        return made
    }

    /// Number of primitives created so far (for tests of the cache).
    static var cachedCount: Int { lock.lock(); defer { lock.unlock() }; return cache.count }

    private static func create(_ key: Key) -> Entry {
        let type = key.bf16 ? dnnl_bf16 : dnnl_f32
        var src = dnnl_memory_desc_t(), wei = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
        var dims: [Int64] = [Int64(key.m), Int64(key.k)]
        var strides: [Int64] = key.transA ? [1, Int64(key.lda)] : [Int64(key.lda), 1]
        check(dnnl_memory_desc_init_by_strides(&src, 2, &dims, type, &strides), "src desc")
        dims = [Int64(key.k), Int64(key.n)]
        strides = key.transB ? [1, Int64(key.ldb)] : [Int64(key.ldb), 1]
        if key.preparedWeights {
            check(dnnl_memory_desc_init_by_tag(&wei, 2, &dims, type, dnnl_format_tag_any), "weights desc (any)")
        } else {
            check(dnnl_memory_desc_init_by_strides(&wei, 2, &dims, type, &strides), "weights desc")
        }
        var biasDesc = dnnl_memory_desc_t()
        if key.bias {
            var biasDims: [Int64] = [1, Int64(key.n)]
            check(dnnl_memory_desc_init_by_tag(&biasDesc, 2, &biasDims, dnnl_f32, dnnl_ab), "bias desc")
        }
        dims = [Int64(key.m), Int64(key.n)]
        strides = [Int64(key.ldc), 1]
        check(dnnl_memory_desc_init_by_strides(&dst, 2, &dims, key.dstBF16 ? dnnl_bf16 : dnnl_f32, &strides), "dst desc")
        var desc = dnnl_matmul_desc_t()
        if key.bias {
            check(dnnl_matmul_desc_init(&desc, &src, &wei, &biasDesc, &dst), "dnnl_matmul_desc_init")
        } else {
            check(dnnl_matmul_desc_init(&desc, &src, &wei, nil, &dst), "dnnl_matmul_desc_init")
        }
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "attr")
        defer { dnnl_primitive_attr_destroy(attr) }
        // User scratchpad: in the default library mode a primitive takes its scratchpad from
        // the *creating* thread's global buffer (Debian's build has no
        // DNNL_ENABLE_CONCURRENT_EXEC), so one cached primitive run by two Dispatch workers at
        // once shares it. bf16 kernels always reorder B through the scratchpad, and the race
        // turned a planted bf16 stage-2 run into NaN at a random step. Each calling thread
        // passes its own buffer instead (`Scratch`).
        check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        let alpha = Float(bitPattern: key.alpha), beta = Float(bitPattern: key.beta)
        if alpha != 1 {
            var scale = alpha
            check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), "output scales")
        }
        var binary: [(index: Int, desc: dnnl_memory_desc_t)] = []
        if beta != 0 || key.gelu || key.scaleColumns || key.residual {
            var ops: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&ops), "post ops")
            defer { dnnl_post_ops_destroy(ops) }
            var index = 0
            if beta != 0 { check(dnnl_post_ops_append_sum(ops, beta), "sum post-op"); index += 1 }
            if key.gelu { check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_gelu_erf, 0, 0), "gelu post-op"); index += 1 }
            if key.scaleColumns {
                var d = dnnl_memory_desc_t()
                var dims: [Int64] = [1, Int64(key.n)]
                check(dnnl_memory_desc_init_by_tag(&d, 2, &dims, dnnl_f32, dnnl_ab), "scale desc")
                check(dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &d), "scale post-op")
                binary.append((index, d))
                index += 1
            }
            if key.residual {
                var d = dnnl_memory_desc_t()
                var dims: [Int64] = [Int64(key.m), Int64(key.n)]
                check(dnnl_memory_desc_init_by_tag(&d, 2, &dims, dnnl_f32, dnnl_ab), "residual desc")
                check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &d), "residual post-op")
                binary.append((index, d))
                index += 1
            }
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "set post ops")
        }
        var pd: dnnl_primitive_desc_t?
        check(
            dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil),
            "matmul primitive (\(key.m)×\(key.k))·(\(key.k)×\(key.n)) \(key.bf16 ? "bf16" : "f32")")
        defer { dnnl_primitive_desc_destroy(pd) }
        var prim: dnnl_primitive_t?
        check(dnnl_primitive_create(&prim, pd), "dnnl_primitive_create")
        let e = Entry(primitive: prim!)
        e.src = src; e.weights = wei; e.dst = dst; e.bias = biasDesc
        e.binary = binary
        if key.preparedWeights, let md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0) {
            e.weights = md.pointee  // the blocked layout oneDNN chose
        }
        if let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) {
            e.scratch = md.pointee
            e.scratchBytes = dnnl_memory_desc_get_size(md)
        }
        return e
    }

    /// Row-major C = alpha · op(A) · op(B) + beta · C on the calling thread (one OpenMP thread).
    /// With `bf16`, `a` and `b` point to bf16 values (UInt16 bit patterns) and C stays fp32.
    static func gemm(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
        _ alpha: Float, _ a: UnsafeRawPointer, _ lda: Int,
        _ b: UnsafeRawPointer, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, bf16: Bool = false
    ) {
        OpenMP.singleThreaded()
        let key = Key(
            transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
            alpha: alpha.bitPattern, beta: beta.bitPattern, bf16: bf16)
        execute(entry(key), a, b, nil, c)
    }

    /// Runs a cached primitive on the calling thread: src `a`, weights `b` (in `e.weights`'s
    /// layout), the optional bias, dst `c`, with this thread's stream and scratchpad.
    /// `binary` holds the second operands of the entry's binary post-ops, in order.
    static func execute(
        _ e: Entry, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ bias: UnsafePointer<Float>?,
        _ c: UnsafeMutableRawPointer, binary: [UnsafePointer<Float>] = []
    ) {
        precondition(binary.count == e.binary.count, "oneDNN: \(binary.count) post-op operands for \(e.binary.count) binary post-ops")
        var ms: dnnl_memory_t?, mw: dnnl_memory_t?, md: dnnl_memory_t?, mb: dnnl_memory_t?
        check(dnnl_memory_create(&ms, &e.src, engine, UnsafeMutableRawPointer(mutating: a)), "src memory")
        check(dnnl_memory_create(&mw, &e.weights, engine, UnsafeMutableRawPointer(mutating: b)), "weights memory")
        check(dnnl_memory_create(&md, &e.dst, engine, c), "dst memory")
        defer { dnnl_memory_destroy(ms); dnnl_memory_destroy(mw); dnnl_memory_destroy(md) }
        var args = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: ms),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: mw),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: md),
        ]
        if let bias {
            check(dnnl_memory_create(&mb, &e.bias, engine, UnsafeMutableRawPointer(mutating: bias)), "bias memory")
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: mb))
        }
        defer { if let mb { dnnl_memory_destroy(mb) } }
        var extra: [dnnl_memory_t?] = []
        defer { for m in extra { dnnl_memory_destroy(m) } }
        for (i, operand) in binary.enumerated() {
            var m: dnnl_memory_t?
            check(dnnl_memory_create(&m, &e.binary[i].desc, engine, UnsafeMutableRawPointer(mutating: operand)), "post-op memory")
            extra.append(m)
            // DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1 (function-like macros are not imported).
            args.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) * Int32(e.binary[i].index + 1) | Int32(DNNL_ARG_SRC_1), memory: m))
        }
        run(e.primitive, args: args, scratch: e.scratch, scratchBytes: e.scratchBytes, what: "dnnl_primitive_execute")
    }

    /// A reorder from a strided fp32 (K, N) operand into the weights layout of the primitive
    /// `layoutOf`, cached like the matmul primitives (attention reorders K and V per head).
    struct ReorderKey: Hashable {
        var k: Int, n: Int, strideK: Int, strideN: Int
        var layoutOf: Key
        /// The source holds bf16 values (UInt16 bit patterns) instead of fp32.
        var srcBF16 = false
    }

    final class Reorder: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        var src = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t(), scratch = dnnl_memory_desc_t()
        var scratchBytes = 0
        init(primitive: dnnl_primitive_t) { self.primitive = primitive }
    }

    nonisolated(unsafe) private static var reorders: [ReorderKey: Reorder] = [:]

    private static func reorderPrimitive(_ key: ReorderKey) -> Reorder {
        lock.lock()
        if let r = reorders[key] { lock.unlock(); return r }
        lock.unlock()
        var plain = dnnl_memory_desc_t(), target = entry(key.layoutOf).weights
        var dims: [Int64] = [Int64(key.k), Int64(key.n)], strides: [Int64] = [Int64(key.strideK), Int64(key.strideN)]
        check(dnnl_memory_desc_init_by_strides(&plain, 2, &dims, key.srcBF16 ? dnnl_bf16 : dnnl_f32, &strides), "reorder src desc")
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "attr")
        defer { dnnl_primitive_attr_destroy(attr) }
        // User scratchpad, as for the matmuls: the cached reorder runs on several workers at once.
        check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        var pd: dnnl_primitive_desc_t?
        check(dnnl_reorder_primitive_desc_create(&pd, &plain, engine, &target, engine, attr), "reorder primitive desc")
        defer { dnnl_primitive_desc_destroy(pd) }
        var prim: dnnl_primitive_t?
        check(dnnl_primitive_create(&prim, pd), "reorder primitive")
        let r = Reorder(primitive: prim!)
        r.src = plain; r.dst = target
        if let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) {
            r.scratch = md.pointee
            r.scratchBytes = dnnl_memory_desc_get_size(md)
        }
        lock.lock()
        defer { lock.unlock() }
        if let r0 = reorders[key] { dnnl_primitive_destroy(r.primitive); return r0 }
        reorders[key] = r
        return r
    }

    /// Copies the fp32 operand op(B) (K, N) at `src`, element (i, j) at src[i·strideK + j·strideN],
    /// into the weights layout of the primitive for `layoutOf` (a `preparedWeights` key) at
    /// `dst`, rounding to bf16 (to nearest even) when that primitive is bf16; on the calling thread.
    /// With `srcBF16` the source holds bf16 values (a copy into the blocked layout, no rounding).
    static func reorder(
        _ src: UnsafeRawPointer, k: Int, n: Int, strideK: Int, strideN: Int,
        layoutOf: Key, into dst: UnsafeMutableRawPointer, srcBF16: Bool = false
    ) {
        OpenMP.singleThreaded()
        let r = reorderPrimitive(ReorderKey(k: k, n: n, strideK: strideK, strideN: strideN, layoutOf: layoutOf, srcBF16: srcBF16))
        var ms: dnnl_memory_t?, md: dnnl_memory_t?
        check(dnnl_memory_create(&ms, &r.src, engine, UnsafeMutableRawPointer(mutating: src)), "reorder src memory")
        check(dnnl_memory_create(&md, &r.dst, engine, dst), "reorder dst memory")
        defer { dnnl_memory_destroy(ms); dnnl_memory_destroy(md) }
        let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: ms), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: md)]
        run(r.primitive, args: args, scratch: r.scratch, scratchBytes: r.scratchBytes, what: "reorder execute")
    }

    /// Executes `primitive` with `args`, plus this thread's scratchpad when the primitive needs
    /// one (`scratchBytes` > 0, described by `scratch`), on this thread's stream, and waits.
    private static func run(
        _ primitive: dnnl_primitive_t, args: [dnnl_exec_arg_t], scratch: dnnl_memory_desc_t, scratchBytes: Int, what: String
    ) {
        var args = args, scratch = scratch
        var mscratch: dnnl_memory_t?
        if scratchBytes > 0 {
            check(dnnl_memory_create(&mscratch, &scratch, engine, Scratch.current(scratchBytes)), "scratchpad memory")
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: mscratch))
        }
        defer { if let mscratch { dnnl_memory_destroy(mscratch) } }
        let stream = Streams.current()
        check(dnnl_primitive_execute(primitive, stream, Int32(args.count), &args), what)
        check(dnnl_stream_wait(stream), "\(what): stream wait")
    }

    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
        precondition(status == dnnl_success, "oneDNN: \(what()) failed with status \(status.rawValue)")
    }

    /// One stream per thread: oneDNN does not promise that a stream may be used by several
    /// threads at once, and Dispatch workers call in concurrently.
    enum Streams {
        static let key: pthread_key_t = {
            var k = pthread_key_t()
            pthread_key_create(&k) { p in dnnl_stream_destroy(OpaquePointer(p)) }
            return k
        }()

        static func current() -> dnnl_stream_t {
            if let p = pthread_getspecific(key) { return OpaquePointer(p) }
            var s: dnnl_stream_t?
            check(dnnl_stream_create(&s, engine, UInt32(dnnl_stream_default_flags.rawValue)), "dnnl_stream_create")
            pthread_setspecific(key, UnsafeRawPointer(s!))
            return s!
        }
    }

    /// One scratchpad buffer per thread, grown to the largest size asked for (64-byte aligned).
    enum Scratch {
        final class Buffer {
            var pointer: UnsafeMutableRawPointer?
            var bytes = 0
            deinit { pointer?.deallocate() }
        }

        static let key: pthread_key_t = {
            var k = pthread_key_t()
            pthread_key_create(&k) { p in if let p { Unmanaged<Buffer>.fromOpaque(p).release() } }
            return k
        }()

        static func current(_ bytes: Int) -> UnsafeMutableRawPointer {
            let buffer: Buffer
            if let p = pthread_getspecific(key) {
                buffer = Unmanaged<Buffer>.fromOpaque(p).takeUnretainedValue()
            } else {
                buffer = Buffer()
                pthread_setspecific(key, Unmanaged.passRetained(buffer).toOpaque())
            }
            if buffer.bytes < bytes {
                buffer.pointer?.deallocate()
                buffer.pointer = .allocate(byteCount: bytes, alignment: 64)
                buffer.bytes = bytes
            }
            return buffer.pointer!
        }
    }

    /// The ISA oneDNN dispatches to on this CPU (dnnl_get_effective_cpu_isa).
    static var isaName: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic: return "avx512_mic"
        case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case let other: return "isa 0x\(String(other.rawValue, radix: 16))"
        }
    }

    /// The implementation oneDNN picks for an fp32 (or bf16) product of this shape, e.g.
    /// `gemm:jit` or `brg:avx512_core_amx` (dnnl_query_impl_info_str); nil when none exists.
    static func implementation(m: Int, n: Int, k: Int, bf16: Bool) -> String? {
        let type = bf16 ? dnnl_bf16 : dnnl_f32
        var src = dnnl_memory_desc_t(), wei = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
        var d1: [Int64] = [Int64(m), Int64(k)], d2: [Int64] = [Int64(k), Int64(n)], d3: [Int64] = [Int64(m), Int64(n)]
        var s1: [Int64] = [Int64(k), 1], s2: [Int64] = [Int64(n), 1], s3: [Int64] = [Int64(n), 1]
        guard dnnl_memory_desc_init_by_strides(&src, 2, &d1, type, &s1) == dnnl_success,
            dnnl_memory_desc_init_by_strides(&wei, 2, &d2, type, &s2) == dnnl_success,
            dnnl_memory_desc_init_by_strides(&dst, 2, &d3, dnnl_f32, &s3) == dnnl_success
        else { return nil }
        var desc = dnnl_matmul_desc_t()
        guard dnnl_matmul_desc_init(&desc, &src, &wei, nil, &dst) == dnnl_success else { return nil }
        var pd: dnnl_primitive_desc_t?
        guard dnnl_primitive_desc_create(&pd, &desc, nil, engine, nil) == dnnl_success else { return nil }
        defer { dnnl_primitive_desc_destroy(pd) }
        var info: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success, let info else { return nil }
        return String(cString: info)
    }
}

/// libgomp's per-thread thread count, looked up at run time from the libgomp that libdnnl
/// already loads (Debian ships no unversioned libgomp.so in the default link path).
enum OpenMP {
    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32
    private static let set: SetThreads? =
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_set_num_threads").map { unsafeBitCast($0, to: SetThreads.self) }
    private static let get: GetThreads? =
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_get_max_threads").map { unsafeBitCast($0, to: GetThreads.self) }

    /// Makes oneDNN calls from this thread run on this thread only (the ICV is per thread, so
    /// it must be set on every Dispatch worker; once set, the check is one call).
    @inline(__always)
    static func singleThreaded() {
        if let get, let set, get() != 1 { set(1) }
    }
}
