// The report's token-similarity viewer: plain JavaScript that the report writes into index.html.
// It reads `window.DVT_VIEWER_DATA` (written by `ViewerData.script` into viewer_data.js), so it
// works from file:// with no server and nothing fetched. `window.dvtViewer` exposes the state,
// the colour table and `select(row, i, j)` for the browser test (scripts/test-report-browser.sh).

enum ViewerScript {
    /// Turbo (Google's colour map, DVT's choice for similarity maps) by its published degree-5
    /// polynomial fit, clamped to [0, 1]; the Swift panels use the same fit (`Colormaps.turbo`).
    static let source = #"""
        (function () {
          "use strict";
          var D = window.DVT_VIEWER_DATA, root = document.getElementById("viewer");
          if (!D || !root) { if (root) root.textContent = "viewer data (viewer_data.js) did not load"; return; }
          var GH = D.grid[0], GW = D.grid[1], N = GH * GW, K = D.dims;

          // fp16 → float, for every bit pattern.
          var HALF = new Float32Array(65536);
          for (var h = 0; h < 65536; h++) {
            var s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
            HALF[h] = e === 0 ? s * m * Math.pow(2, -24) : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * Math.pow(2, e - 15);
          }
          function turbo(x) {
            x = Math.max(0, Math.min(1, x));
            var r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))));
            var g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))));
            var b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))));
            function c(v) { return Math.round(255 * Math.max(0, Math.min(1, v))); }
            return [c(r), c(g), c(b)];
          }
          var LUT = [];
          for (var q = 0; q < 256; q++) LUT.push(turbo(q / 255));

          var layerOf = {};
          D.layers.forEach(function (l) { layerOf[l.layer] = l; });
          var cache = {};
          function vectors(layer, method, image) {
            var key = layer + "/" + method + "/" + image;
            if (key in cache) return cache[key];
            var l = layerOf[layer], b64 = l && l.features[method] ? l.features[method][image] : null;
            var out = null;
            if (b64) {
              var bin = atob(b64), n = bin.length >> 1;
              out = new Float32Array(n);
              for (var i = 0; i < n; i++) out[i] = HALF[bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)];
            }
            cache[key] = out;
            return out;
          }
          function cosines(qv, qt, V) {
            var out = new Float32Array(N);
            for (var t = 0; t < N; t++) {
              var s = 0, o = t * K, p = qt * K;
              for (var k = 0; k < K; k++) s += qv[p + k] * V[o + k];
              out[t] = s;
            }
            return out;
          }

          var state = { layer: D.main_layer, image: { A: 0, B: Math.min(1, D.images.length - 1) },
                        selected: { row: "A", i: GH >> 1, j: GW >> 1 }, hover: null, scale: "fit", range: [0, 1], active: false };

          function el(tag, attrs, text) {
            var e = document.createElement(tag);
            for (var a in attrs) e.setAttribute(a, attrs[a]);
            if (text !== undefined) e.textContent = text;
            return e;
          }
          function options(select, items, value) {
            items.forEach(function (it) { var o = el("option", { value: it[0] }, it[1]); if (String(it[0]) === String(value)) o.selected = true; select.appendChild(o); });
          }

          // Controls.
          var controls = el("div", { "class": "vcontrols" });
          function labelled(text, select) { var l = el("label", {}, text + " "); l.appendChild(select); controls.appendChild(l); return select; }
          var imgItems = D.images.map(function (im, i) { return [i, im.name]; });
          var selA = labelled("image A", el("select", { id: "vImageA" })); options(selA, imgItems, state.image.A);
          var selB = labelled("image B", el("select", { id: "vImageB" })); options(selB, imgItems, state.image.B);
          var selL = labelled("layer", el("select", { id: "vLayer" }));
          options(selL, D.layers.map(function (l) { return [l.layer, "block " + l.layer + (l.layer === D.main_layer ? " (denoised layer)" : " (raw only)")]; }), state.layer);
          if (D.layers.length < 2) selL.disabled = true;
          var selS = labelled("colour scale", el("select", { id: "vScale" }));
          options(selS, [["fit", "fit: lowest shown cosine … 1"], ["full", "fixed: −1 … 1"]], state.scale);
          root.appendChild(controls);
          var status = el("p", { id: "vStatus", "class": "vstatus" });
          root.appendChild(status);

          // Rows of panels: the input, then one similarity map per method; a marker shows the token.
          var grid = el("div", { "class": "vgrid" });
          root.appendChild(grid);
          var panels = [];
          function cell(row, kind, method, caption) {
            var fig = el("figure", { "class": "vcell" });
            var box = el("div", { "class": "vbox", style: "aspect-ratio: " + GW + " / " + GH });
            var media;
            if (kind === "input") {
              media = el("img", { id: "vInput" + row, alt: caption, "data-row": row });
            } else {
              media = el("canvas", { width: GW, height: GH, "data-row": row, "data-method": method, "aria-label": caption, role: "img" });
            }
            box.appendChild(media);
            var marker = el("div", { "class": "vmarker", style: "width:" + (100 / GW) + "%;height:" + (100 / GH) + "%" });
            box.appendChild(marker);
            var note = el("div", { "class": "vnote" });
            box.appendChild(note);
            fig.appendChild(box);
            var cap = el("figcaption", {}, caption);
            fig.appendChild(cap);
            grid.appendChild(fig);
            var p = { row: row, kind: kind, method: method, media: media, marker: marker, note: note, caption: cap, box: box };
            panels.push(p);
            function token(ev) {
              var r = box.getBoundingClientRect();
              var j = Math.floor((ev.clientX - r.left) / r.width * GW), i = Math.floor((ev.clientY - r.top) / r.height * GH);
              return { row: row, i: Math.max(0, Math.min(GH - 1, i)), j: Math.max(0, Math.min(GW - 1, j)) };
            }
            box.addEventListener("mousemove", function (ev) { state.hover = token(ev); render(); });
            box.addEventListener("mouseleave", function () { state.hover = null; render(); });
            box.addEventListener("click", function (ev) { state.selected = token(ev); state.hover = null; render(); });
            return p;
          }
          ["A", "B"].forEach(function (row) {
            cell(row, "input", null, "input, image " + row);
            D.methods.forEach(function (m) { cell(row, "sim", m.key, m.label + ", image " + row); });
          });

          // The one colour bar for every similarity panel.
          var barFig = el("figure", { "class": "vbar" });
          var bar = el("canvas", { id: "vColorbar", width: 256, height: 14, role: "img", "aria-label": "colour bar: cosine similarity" });
          barFig.appendChild(bar);
          var ticks = el("div", { "class": "vticks" });
          barFig.appendChild(ticks);
          barFig.appendChild(el("figcaption", {}, "colour bar: cosine similarity to the selected token (one scale for every panel)"));
          root.appendChild(barFig);
          var bctx = bar.getContext("2d"), bimg = bctx.createImageData(256, 14);
          for (var x = 0; x < 256; x++) for (var y = 0; y < 14; y++) { var o = (y * 256 + x) * 4; bimg.data[o] = LUT[x][0]; bimg.data[o + 1] = LUT[x][1]; bimg.data[o + 2] = LUT[x][2]; bimg.data[o + 3] = 255; }
          bctx.putImageData(bimg, 0, 0);

          function imageName(row) { return D.images[state.image[row]].name; }

          function render() {
            var q = state.hover || state.selected, qImage = state.image[q.row], qt = q.i * GW + q.j;
            var maps = [];
            panels.forEach(function (p) {
              if (p.kind === "input") {
                var src = D.images[state.image[p.row]].src;
                if (p.media.getAttribute("src") !== src) p.media.setAttribute("src", src);
                p.caption.textContent = "input, image " + p.row + ": " + imageName(p.row);
                p.media.setAttribute("alt", p.caption.textContent);
              } else {
                var label = D.methods.filter(function (m) { return m.key === p.method; })[0].label;
                p.caption.textContent = label + ", image " + p.row + ": " + imageName(p.row) + ", block " + state.layer;
                p.media.setAttribute("aria-label", "cosine similarity map, " + p.caption.textContent);
                var qv = vectors(state.layer, p.method, qImage), V = vectors(state.layer, p.method, state.image[p.row]);
                if (qv && V) { maps.push([p, cosines(qv, qt, V)]); p.note.textContent = ""; p.media.style.visibility = "visible"; }
                else {
                  p.media.style.visibility = "hidden";
                  p.note.textContent = "not computed at block " + state.layer + (state.layer !== D.main_layer ? " (denoised features exist for block " + D.main_layer + ")" : "");
                }
              }
              var show = p.row === q.row;
              p.marker.style.display = show ? "block" : "none";
              p.marker.style.left = (q.j / GW * 100) + "%";
              p.marker.style.top = (q.i / GH * 100) + "%";
            });
            var lo = -1, hi = 1;
            if (state.scale === "fit") {
              lo = 1;
              maps.forEach(function (pm) { for (var t = 0; t < N; t++) lo = Math.min(lo, pm[1][t]); });
              lo = Math.max(-1, Math.floor(lo * 20) / 20);
              if (lo > 0.95) lo = 0.95;
            }
            state.range = [lo, hi];
            maps.forEach(function (pm) {
              var ctx = pm[0].media.getContext("2d"), img = ctx.createImageData(GW, GH);
              for (var t = 0; t < N; t++) {
                var idx = Math.max(0, Math.min(255, Math.round((pm[1][t] - lo) / (hi - lo) * 255))), c = LUT[idx], o = 4 * t;
                img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
              }
              ctx.putImageData(img, 0, 0);
            });
            bar.setAttribute("data-lo", lo); bar.setAttribute("data-hi", hi);
            ticks.innerHTML = "";
            [lo, (lo + hi) / 2, hi].forEach(function (v, k) { var s = el("span", { style: "left:" + (k * 50) + "%" }, v.toFixed(2)); ticks.appendChild(s); });
            status.textContent = (state.hover ? "hovering" : "selected") + ": token row " + q.i + ", column " + q.j + " of image " + q.row +
              " (" + D.images[qImage].name + "), block " + state.layer + ". Click to select; then the arrow keys move the selection.";
          }

          selA.addEventListener("change", function () { state.image.A = +selA.value; render(); });
          selB.addEventListener("change", function () { state.image.B = +selB.value; render(); });
          selL.addEventListener("change", function () { state.layer = +selL.value; render(); });
          selS.addEventListener("change", function () { state.scale = selS.value; render(); });
          document.addEventListener("click", function (ev) { state.active = root.contains(ev.target); });
          document.addEventListener("keydown", function (ev) {
            var t = ev.target && ev.target.tagName;
            if (t === "SELECT" || t === "INPUT" || t === "TEXTAREA") return;
            var d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[ev.key];
            if (!d) return;
            if (!state.active) return;  // the arrows scroll the page unless the viewer was clicked last
            ev.preventDefault();
            state.selected = { row: state.selected.row, i: Math.max(0, Math.min(GH - 1, state.selected.i + d[0])), j: Math.max(0, Math.min(GW - 1, state.selected.j + d[1])) };
            state.hover = null;
            render();
          });

          window.dvtViewer = {
            state: state, lut: LUT, grid: [GH, GW], dims: K,
            select: function (row, i, j) { state.selected = { row: row, i: i, j: j }; state.hover = null; state.active = true; render(); },
            setImages: function (a, b) { state.image.A = a; state.image.B = b; selA.value = a; selB.value = b; render(); },
            setLayer: function (l) { state.layer = l; selL.value = l; render(); }
          };
          render();
        })();
        """#

    static let style = """
        #viewer { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em 1em; background: #fcfcfc; }
        .vcontrols label { margin-right: 1.2em; } .vstatus { color: #444; font-size: 0.9em; }
        .vgrid { display: grid; grid-template-columns: repeat(5, 1fr); gap: 8px; }
        .vcell { margin: 0; } .vcell figcaption { font-size: 0.8em; }
        .vbox { position: relative; width: 100%; cursor: crosshair; background: #eee; }
        .vbox img, .vbox canvas { position: absolute; inset: 0; width: 100%; height: 100%; image-rendering: pixelated; }
        .vmarker { position: absolute; box-sizing: border-box; border: 2px solid #fff; outline: 1px solid #000; pointer-events: none; }
        .vnote { position: absolute; inset: 0; padding: 1em; font-size: 0.8em; color: #555; pointer-events: none; }
        .vbar { margin: 0.6em 0 0 0; width: 320px; } .vbar canvas { width: 100%; height: 14px; image-rendering: pixelated; }
        .vticks { position: relative; height: 1.2em; font-size: 0.8em; }
        .vticks span { position: absolute; transform: translateX(-50%); } .vticks span:first-child { transform: none; }
        .vticks span:last-child { transform: translateX(-100%); }
        """
}
