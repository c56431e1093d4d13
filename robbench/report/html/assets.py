"""The page's inline style and script (no network, no framework), and what each check's flag means."""

from __future__ import annotations

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:1.2em;
color:#1b1f24;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f5f7;position:sticky;top:0;cursor:pointer;user-select:none}
.ub{color:#8a5a00;font-weight:600}.weak{color:#8a5a00}.adaptive{color:#0b6b2f}
.bar{display:inline-block;height:.7em;background:#3b7dd8;vertical-align:middle;margin-right:.4em}
.bar.ub{background:repeating-linear-gradient(45deg,#e0a030,#e0a030 3px,#fff 3px,#fff 6px)}
.ci{color:#666;font-size:.85em;white-space:nowrap}td{white-space:nowrap}td code{white-space:normal}.note{background:#fff7e0;border-left:4px solid #e0a030;padding:.4em .8em;margin:.6em 0}
.flag{color:#a01010;font-weight:600}.ok{color:#0b6b2f}
.meta td:first-child{color:#555;white-space:nowrap}code{font-size:.9em;background:#f4f5f7;padding:0 .2em}
input.filter{margin:.3em 0;padding:.3em;width:24em}
.legend{font-size:.85em;color:#444}
.gallery{display:flex;flex-wrap:wrap;gap:.8em}figure.ex{margin:0;max-width:15em}
img.ex{width:64px;height:64px;image-rendering:pixelated;border:1px solid #ccc;margin-right:2px}
figure.ex figcaption{font-size:.75em;color:#444}b.bad{color:#a01010}
"""

#: sortable columns (click a header) and a text filter over the full table; a dozen lines, no framework
JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var rows=Array.from(t.tBodies[0].rows),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
    rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,y=b.cells[i].dataset.v||b.cells[i].textContent;
      var nx=parseFloat(x),ny=parseFloat(y);var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
    rows.forEach(function(r){t.tBodies[0].appendChild(r);});});});});
document.querySelectorAll('input.filter').forEach(function(inp){inp.addEventListener('input',function(){
  var q=inp.value.toLowerCase(),t=document.getElementById(inp.dataset.table);
  Array.from(t.tBodies[0].rows).forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';});});});
"""

#: what a flag of each check means, and what to do about it (one sentence each)
CHECK_HELP = {
    "judge-draws": "A stochastic defense judged on fewer than 4 draws, or with a soft headline, can count a "
    "broken point as robust on a lucky draw: judge worst of 4 or more.",
    "draws-not-converged": "The defense's worst-of-m accuracy was still falling with the last judge draw: more "
    "draws, or an attacker who can submit again, would likely lower it; raise evaluation.draws.",
    "adaptive-attack": "No attack at full strength went through the defense itself, so its numbers are upper "
    "bounds: add BPDA or full-gradient PGD (with EoT on a randomised defense), or use `adaptive`.",
    "library-early-stop": "A library's stopping rule decided what was returned where its forward is not the "
    "judge's: the number can be too high; drop the override.",
    "randomness": "The defense's randomness is not what it declares, or a randomised defense was attacked "
    "without EoT or fixed seeds: single-draw attacks overestimate robustness.",
    "softmax-outputs": "The defense outputs probabilities, not logits: cross-entropy gradients vanish; attack "
    "the logits or use a margin loss.",
    "zero-gradients": "The gradients the attack saw were zero or not finite (masked gradients): use BPDA or a "
    "gradient-free attack.",
    "large-eps": "At a very large budget the attack should reach 0 %; if not, the attack (not the defense) is failing.",
    "loss-not-converged": "The attack's loss was still rising at its last step: more steps would likely lower "
    "the accuracy.",
    "full-vs-bpda": "The exact gradient through the purifier did much worse than BPDA: the exact gradient is "
    "masked, trust the BPDA line.",
    "black-box-beats-white-box": "A gradient-free attack broke points the gradient attacks left robust: the "
    "gradients are masked.",
}
