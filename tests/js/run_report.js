// Runs the HTML report's script against a minimal DOM stub (no browser needed) and
// prints what it drew: the flame graph's labels and rectangles, then after a search,
// a zoom, the icicle toggle and a hover.  Usage: node run_report.js SCRIPT.js DATA.json
'use strict';
const fs = require('fs');
const [script, dataPath] = process.argv.slice(2);
const drawn = { rects: [], texts: [] };
function el(id) {
  const listeners = {};
  return {
    id, style: {}, textContent: id === 'perfkit-data' ? fs.readFileSync(dataPath, 'utf8') : '', value: '',
    clientWidth: 1000, offsetWidth: 100, children: [],
    parentNode: { clientWidth: 1000 },
    appendChild(c) { this.children.push(c); },
    addEventListener(ev, fn) { listeners[ev] = fn; },
    fire(ev, arg) { listeners[ev](arg || {}); },
    getBoundingClientRect() { return { left: 0, top: 0 }; },
    getContext() {
      return {
        setTransform() {}, clearRect() { drawn.rects = []; drawn.texts = []; }, measureText() { return { width: 7 }; },
        fillRect(x, y, w, h) { drawn.rects.push([x, y, w, h]); },
        fillText(t, x, y) { drawn.texts.push(t); drawn.at = drawn.at || {}; drawn.at[t] = [x, y]; },
        set fillStyle(v) {}, set font(v) {}, set textBaseline(v) {}, set globalAlpha(v) {},
      };
    },
  };
}
const els = {};
global.window = { devicePixelRatio: 1, innerWidth: 1200, addEventListener() {} };
global.document = {
  getElementById(id) { return els[id] || (els[id] = el(id)); },
  createElement(tag) { return el(tag); },
  querySelectorAll() { return []; },
};
eval(fs.readFileSync(script, 'utf8'));
const out = { initial: { rects: drawn.rects.length, texts: drawn.texts.slice() } };
const search = els['search'];
search.value = 'spin_b';
search.fire('input');
out.matched = els['matched'].textContent;
const canvas = els['flame'];
// hover and click the frame labelled spin_a
const [x, y] = drawn.at['spin_a'];
canvas.fire('mousemove', { clientX: x + 1, clientY: y });
out.tip = els['tip'].textContent;
canvas.fire('click', { clientX: x + 1, clientY: y });
out.zoomed = { rects: drawn.rects.length, texts: drawn.texts.slice(), widest: Math.max(...drawn.rects.map(x => x[2])) };
els['invert'].fire('click');
out.icicle = els['invert'].textContent;
console.log(JSON.stringify(out));
