import TensorCore
import TestSupport
import Testing

@Suite("Reductions and movement")
struct ReduceMovementTests {
    @Test("sum and mean over axes")
    func reductions() {
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        #expect(x.sum(axes: [0]).scalars == [5, 7, 9])
        #expect(x.sum(axes: [1]).scalars == [6, 15])
        #expect(x.sum(axes: [-1], keepDims: true).shape == [2, 1])
        #expect(x.mean(axes: [0, 1]).scalars == [3.5])
        #expect(x.sum().item == 21)
        let t = randn([2, 3, 4], seed: 1)
        gradCheck("sum axis 1", [t]) { $0[0].sum(axes: [1]) }
        gradCheck("sum axes 0,2 keep", [t]) { $0[0].sum(axes: [0, 2], keepDims: true) }
        gradCheck("mean last", [t]) { $0[0].mean(axes: [-1]) }
        gradCheck("sum all", [t]) { $0[0].sum() }
        gradCheck("mean all", [t]) { $0[0].mean() }
    }

    @Test("reshape, permute, transpose, slice, concat")
    func movement() {
        let x = Tensor(Array(0..<24).map(Float.init), shape: [2, 3, 4])
        let p = x.permute([2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        #expect(p.scalars.prefix(6) == [0, 4, 8, 12, 16, 20])
        #expect(x.transpose(1, 2).shape == [2, 4, 3])
        #expect(x.slice(axis: 1, 1..<3).scalars.prefix(4) == [4, 5, 6, 7])
        let c = Tensor.concat([x.slice(axis: 2, 0..<1), x.slice(axis: 2, 1..<4)], axis: 2)
        #expect(c.scalars == x.scalars)
        let t = randn([2, 3, 4], seed: 2)
        let u = randn([2, 2, 4], seed: 3)
        gradCheck("reshape", [t]) { $0[0].reshape([6, -1]) }
        gradCheck("permute", [t]) { $0[0].permute([1, 2, 0]) }
        gradCheck("transpose", [t]) { $0[0].transpose(0, 2) }
        gradCheck("slice", [t]) { $0[0].slice(axis: 1, 1..<3) }
        gradCheck("concat", [t, u]) { Tensor.concat([$0[0], $0[1]], axis: 1) }
    }

    @Test("gather rows and scatter-add rows, with repeated indices")
    func gatherScatter() {
        let t = randn([5, 3], seed: 4)
        let idx = [4, 0, 0, 2]
        gradCheck("gatherRows", [t]) { $0[0].gatherRows(idx) }
        let s = randn([4, 3], seed: 5)
        gradCheck("scatterAddRows", [s]) { $0[0].scatterAddRows(idx, rows: 5) }
        let g = t.gatherRows(idx)
        #expect(Array(g.scalars[3..<6]) == Array(t.scalars[0..<3]))
        let sc = s.scatterAddRows(idx, rows: 5)
        #expect(abs(sc[flat: 0] - (s[flat: 3] + s[flat: 6])) < 1e-6)
    }
}
