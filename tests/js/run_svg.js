// Runs the SVG flame graph's script against a DOM stub built from the frames the test
// passes in, then searches and zooms like a user.  Usage: node run_svg.js SCRIPT.js FRAMES.json
'use strict';
const fs = require('fs');
const [script, framesPath] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(framesPath, 'utf8'));
function node(attrs) {
  const listeners = {};
  return {
    attrs: Object.assign({}, attrs), style: {}, textContent: attrs.textContent || '',
    getAttribute(k) { return this.attrs[k] === undefined ? null : String(this.attrs[k]); },
    setAttribute(k, v) { this.attrs[k] = v; },
    addEventListener(ev, fn) { listeners[ev] = fn; },
    fire(ev) { listeners[ev]({}); },
    dispatchEvent(e) { listeners[e.type]({}); },
  };
}
const frames = spec.frames.map(f => {
  const g = node({ 'data-d': f.d, 'data-v': f.v, 'data-n': f.n, 'data-l': f.name });
  g.rect = node({ x: f.x, width: f.w, fill: 'rgb(1,2,3)' });
  g.text = node({ x: f.x + 3 });
  g.title = node({ textContent: f.title });
  g.querySelector = sel => g[sel];
  return g;
});
const els = { details: node({}), matched: node({}), unzoom: node({}), search: node({}) };
global.window = { prompt: () => spec.search, addEventListener() {} };
global.Event = function (type) { this.type = type; };
global.document = {
  documentElement: node({ 'data-total': spec.total }),
  querySelectorAll: () => frames,
  getElementById: id => els[id],
};
eval(fs.readFileSync(script, 'utf8'));
const out = {};
els.search.fire('click');
out.matched = els.matched.textContent;
out.highlighted = frames.filter(g => g.rect.attrs.fill === 'rgb(230,0,230)').map(g => g.attrs['data-l']);
const target = frames.find(g => g.attrs['data-l'] === spec.zoom);
target.fire('click');
out.zoom = frames.map(g => ({ name: g.attrs['data-l'], shown: g.style.display !== 'none',
  x: +g.rect.attrs.x, w: +g.rect.attrs.width, text: g.text.textContent }));
target.fire('mouseover');
out.details = els.details.textContent;
els.unzoom.fire('click');
out.reset = frames.map(g => +g.rect.attrs.width);
console.log(JSON.stringify(out));
