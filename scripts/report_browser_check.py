"""Checks a dvt report in headless Chromium (run by scripts/test-report-browser.sh).

Usage: report_browser_check.py RUN_DIR MODEL [--screenshot PREFIX]

Opens RUN_DIR/report/index.html over file://, clicks a known token on input image A, and checks
that every similarity panel's pixels (rows A and B, every method) decode, through the page's
own colour table and range, to the cosines this script computes from the run's .npy feature
files, within the fp16 storage and 8-bit colour quantisation. Then checks the arrow keys, the
layer switch, that every image, canvas and chart sits in a <figure> with a visible caption, and
that the page raised no JavaScript error. Exits non-zero with a message on the first failure.
"""
import os
import sys

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

TREES = {"raw": "raw_features", "srt": "srt_features", "stage1": "denoised_features", "stage2": "stage2_features"}


def fail(msg):
    print(f"report-browser: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def unit(x):
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(n > 0, x / np.where(n > 0, n, 1), 0)


def main():
    run, model = sys.argv[1], sys.argv[2]
    shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    report = os.path.join(run, "report", "index.html")
    opts = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1300,1400"]:
        opts.add_argument(a)
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
    try:
        check(driver, report, run, model, shot)
    finally:
        driver.quit()
    print("report-browser: ok")


def panel_pixels(driver, row, method):
    return driver.execute_script(
        "var c = document.querySelector('canvas[data-row=\"' + arguments[0] + '\"][data-method=\"' + arguments[1] + '\"]');"
        "if (!c || c.style.visibility === 'hidden') return null;"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);", row, method)


def check_panels(driver, run, model, layer, query, tree_of, methods):
    """Compares every visible similarity panel with cosines from the feature files."""
    state = driver.execute_script("return {range: dvtViewer.state.range, image: dvtViewer.state.image, lut: dvtViewer.lut,"
                                  " names: DVT_VIEWER_DATA.images.map(function (m) { return m.name; })}")
    lo, hi = state["range"]
    lut = np.array(state["lut"], dtype=np.float64)  # (256, 3)
    names = state["names"]
    row_q, i, j = query
    step = (hi - lo) / 255
    tol = 1.5 * step + 4e-3  # colour quantisation (half a step each way, plus rounding ties) + fp16 storage
    checked = 0
    for method in methods:
        tree = tree_of(method)
        qmap = np.load(os.path.join(run, tree, model, names[state["image"][row_q]] + ".npy")).astype(np.float64)
        q = unit(qmap[i, j])
        for row in ["A", "B"]:
            px = panel_pixels(driver, row, method)
            fmap = np.load(os.path.join(run, tree, model, names[state["image"][row]] + ".npy")).astype(np.float64)
            gh, gw = fmap.shape[:2]
            if px is None:
                fail(f"{method} row {row}: the panel is hidden although {tree} has the map")
            rgb = np.array(px, dtype=np.float64).reshape(gh, gw, 4)[..., :3]
            cos = unit(fmap) @ q  # (gh, gw)
            d = ((rgb[:, :, None, :] - lut[None, None, :, :]) ** 2).sum(-1)  # (gh, gw, 256)
            best = d.min(-1, keepdims=True)
            if best.max() > 12:
                fail(f"{method} row {row}: a pixel is not a colour of the page's table (distance² {best.max():.0f})")
            # Every table entry as close as the best one is a candidate value (adjacent entries can round alike).
            values = lo + np.arange(256) * step
            err = np.where(d <= best + 1e-9, np.abs(values[None, None, :] - cos[:, :, None]), np.inf).min(-1)
            err = np.where(cos < lo, np.maximum(0, err - (lo - cos)), err)  # below the range: clamped to the first colour
            if err.max() > tol:
                k = np.unravel_index(err.argmax(), err.shape)
                fail(f"{method} row {row} ({names[state['image'][row]]}), block {layer}: token {tuple(int(v) for v in k)} shows a colour worth "
                     f"{cos[k] - err[k]:.4f} or {cos[k] + err[k]:.4f}, the feature files give cosine {cos[k]:.4f} "
                     f"(tolerance {tol:.4f}, range {lo}..{hi})")
            checked += 1
    return checked


def check(driver, report, run, model, shot):
    driver.get("file://" + os.path.abspath(report))
    if not driver.execute_script("return !!window.dvtViewer"):
        fail(f"{report}: the viewer did not start (window.dvtViewer missing); errors: {driver.execute_script('return window.__dvtErrors')}")
    info = driver.execute_script("var D = DVT_VIEWER_DATA; return {grid: D.grid, main: D.main_layer, dims: D.dims, channels: D.channels,"
                                 " layers: D.layers.map(function (l) { return l.layer; }), methods: D.methods.map(function (m) { return m.key; }),"
                                 " images: D.images.length}")
    if info["images"] < 2:
        fail(f"the viewer holds {info['images']} image(s); the test needs 2 for the cross-image check")
    if info["dims"] != info["channels"]:
        fail(f"the tiny run's features were projected ({info['dims']} of {info['channels']} dims); the test compares full cosines")
    gh, gw = info["grid"]
    driver.execute_script("dvtViewer.setImages(0, 1)")
    # A real click on input image A at token (i, j); offsets are from the element's centre.
    i, j = gh // 3, gw - 2
    img = driver.find_element(By.ID, "vInputA")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    r = img.rect
    ActionChains(driver).move_to_element_with_offset(img, int((j + 0.5) / gw * r["width"] - r["width"] / 2),
                                                     int((i + 0.5) / gh * r["height"] - r["height"] / 2)).click().perform()
    sel = driver.execute_script("return dvtViewer.state.selected")
    if (sel["row"], sel["i"], sel["j"]) != ("A", i, j):
        fail(f"clicking token ({i}, {j}) of image A selected {sel}")
    # Move the mouse off the panels so the hover preview does not replace the selection.
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
    main_tree = lambda m: TREES[m]
    n = check_panels(driver, run, model, info["main"], ("A", i, j), main_tree, info["methods"])
    print(f"report-browser: {n} similarity panels match the feature files at block {info['main']} (token {i},{j} of image A)")
    if shot:
        viewer = driver.find_element(By.ID, "viewer")
        viewer.screenshot(shot + "-viewer.png")
        print(f"report-browser: wrote {shot}-viewer.png")
    # The fixed scale, and a query from row B (correspondence the other way).
    driver.execute_script("document.getElementById('vScale').value = 'full'; document.getElementById('vScale').dispatchEvent(new Event('change'));"
                          " dvtViewer.select('B', 0, 0)")
    check_panels(driver, run, model, info["main"], ("B", 0, 0), main_tree, info["methods"])
    # Arrow keys move the selection.
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_DOWN)
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    sel = driver.execute_script("return dvtViewer.state.selected")
    if (sel["row"], sel["i"], sel["j"]) != ("B", 1, 1):
        fail(f"arrow down + right from token (0, 0) of image B gave {sel}")
    # The layer switch: another block's raw maps.
    others = [l for l in info["layers"] if l != info["main"]]
    if not others:
        fail(f"the viewer offers only block {info['main']}; the run extracts more for the layer switch")
    block = others[0]
    driver.execute_script("dvtViewer.setLayer(arguments[0])", block)
    check_panels(driver, run, model, block, ("B", 1, 1), lambda m: f"report_layers/block_{block:02d}", ["raw"])
    hidden = driver.execute_script("return Array.from(document.querySelectorAll('canvas[data-method=\"stage2\"]')).every(function (c) { return c.style.visibility === 'hidden'; })")
    if not hidden:
        fail(f"block {block} has no stage-2 maps, yet a stage-2 panel is drawn")
    print(f"report-browser: the layer switch shows block {block}'s raw maps; arrow keys move the selection")
    # Every picture labelled.
    unlabelled = driver.execute_script(
        "return Array.from(document.querySelectorAll('img, canvas, svg')).filter(function (e) {"
        "  var f = e.closest('figure'), c = f && f.querySelector('figcaption');"
        "  return !c || !c.textContent.trim() || c.getClientRects().length === 0 || getComputedStyle(c).visibility === 'hidden';"
        "}).map(function (e) { return e.tagName + ' ' + (e.getAttribute('src') || e.getAttribute('data-method') || e.id || e.getAttribute('aria-label')); })")
    if unlabelled:
        fail(f"{len(unlabelled)} picture(s) without a visible caption: {unlabelled[:8]}")
    count = driver.execute_script("return document.querySelectorAll('img, canvas, svg').length")
    broken = driver.execute_script("return Array.from(document.images).filter(function (i) { return !i.complete || i.naturalWidth === 0; }).map(function (i) { return i.getAttribute('src'); })")
    if broken:
        fail(f"images that did not load: {broken[:8]}")
    errors = driver.execute_script("return window.__dvtErrors")
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors or severe:
        fail(f"JavaScript errors: {errors} {severe}")
    print(f"report-browser: {count} pictures, each with a visible caption; no JavaScript error")
    if shot:
        driver.execute_script("dvtViewer.setLayer(arguments[0]); dvtViewer.select('A', arguments[1], arguments[2])", info["main"], i, j)
        driver.set_window_size(1300, driver.execute_script("return document.body.scrollHeight") + 100)
        driver.save_screenshot(shot + "-page.png")
        print(f"report-browser: wrote {shot}-page.png")


if __name__ == "__main__":
    main()
