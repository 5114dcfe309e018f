"""review.html: one static page (no server) of the run's overlays, worst ``review_score`` first,
with per-class filters and each image's scores beside it.

The data sit in the page as JSON; a small script draws the cards. ``#class=NAME`` in the address
opens the page filtered to that class. Each card's image sets ``data-loaded`` once it has loaded,
so a browser test can tell rendered images from broken ones.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from service.labeling.journal import Entry, write_atomic

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WeakSeg review: __TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa}
#filters button{margin:2px;padding:3px 8px;border:1px solid #888;border-radius:4px;background:#fff;cursor:pointer}
#filters button.on{background:#234;color:#fff}
.card{display:flex;gap:14px;margin:10px 0;padding:8px;background:#fff;border:1px solid #ddd;border-radius:6px}
.card img{max-width:512px;max-height:360px}
.score{font-size:20px;font-weight:bold}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}.error{color:#a00}
</style></head><body>
<h1>Review: __TITLE__</h1>
<p id="summary"></p>
<div id="filters"><button data-class="" class="on">all classes</button></div>
<div id="cards"></div>
<h2>Failed images</h2><ul id="errors"></ul>
<script type="application/json" id="data">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById("data").textContent);
const cards = document.getElementById("cards");
let chosen = decodeURIComponent((location.hash.match(/class=([^&]*)/) || [])[1] || "");
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function card(item) {
  const c = el("div", {"class": "card", "data-image": item.image, "data-review-score": item.review_score});
  const img = el("img", {src: item.overlay, alt: item.image, loading: "eager"});
  img.addEventListener("load", () => img.setAttribute("data-loaded", "1"));
  img.addEventListener("error", () => img.setAttribute("data-loaded", "0"));
  c.appendChild(img);
  const side = el("div");
  side.appendChild(el("div", {"class": "name"}, item.image));
  side.appendChild(el("div", {"class": "score"}, "review score " + item.review_score.toFixed(3)));
  side.appendChild(el("div", {}, "not confident: " + (100 * item.uncertain_fraction).toFixed(1) + " % of pixels; labels: " + item.labels_source));
  const t = el("table");
  const head = el("tr");
  for (const h of ["class", "pixels", "confidence", "predicted IoU", "stability"]) head.appendChild(el("th", {}, h));
  t.appendChild(head);
  for (const k of item.classes) {
    const r = el("tr", {"class": "class-row"});
    for (const v of [k.name, k.area, k.confidence.toFixed(3), k.sam_iou.toFixed(3), k.stability.toFixed(3)]) r.appendChild(el("td", {}, String(v)));
    t.appendChild(r);
  }
  side.appendChild(t);
  const links = el("div");
  links.appendChild(el("a", {href: item.mask}, "mask"));
  links.appendChild(document.createTextNode(" · "));
  links.appendChild(el("a", {href: item.confidence}, "confidence"));
  side.appendChild(links);
  c.appendChild(side);
  return c;
}
function draw() {
  cards.replaceChildren();
  const shown = data.items.filter(i => !chosen || i.classes.some(k => k.name === chosen));
  for (const i of shown) cards.appendChild(card(i));
  document.getElementById("summary").textContent =
    data.items.length + " images, " + shown.length + " shown" + (chosen ? " (class " + chosen + ")" : "") + ", worst review score first; " + data.errors.length + " failed";
  for (const b of document.querySelectorAll("#filters button")) b.classList.toggle("on", b.dataset.class === chosen);
}
const filters = document.getElementById("filters");
for (const name of data.classes) filters.appendChild(el("button", {"data-class": name}, name));
filters.addEventListener("click", e => { if (e.target.dataset && "class" in e.target.dataset) { chosen = e.target.dataset.class; draw(); } });
for (const e of data.errors) document.getElementById("errors").appendChild(el("li", {"class": "error"}, e.image + ": " + e.code + ": " + e.message));
draw();
</script></body></html>
"""


def write(out: Path, entries: Sequence[Entry], classes: Sequence[str], title: str) -> Path:
    """Write ``out/review.html`` for ``entries`` (OK ones as cards, worst first; failed ones listed)."""
    ok = sorted((e for e in entries if e.get("status") == "ok"), key=lambda e: (-e["review_score"], e["image"]))
    keys = ("image", "review_score", "uncertain_fraction", "labels_source", "classes", "overlay", "mask", "confidence")
    data = {
        "classes": [c for c in classes if any(k["name"] == c for e in ok for k in e["classes"])],
        "items": [{k: e[k] for k in keys} for e in ok],
        "errors": [{k: e[k] for k in ("image", "code", "message")} for e in entries if e.get("status") == "error"],
    }
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", text)
    path = out / "review.html"
    write_atomic(path, page.encode())
    return path
