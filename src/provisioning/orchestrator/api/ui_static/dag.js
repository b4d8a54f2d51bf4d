// A workflow's DAG as SVG, laid out by layers of the dependency graph: layer by
// layer left to right (top to bottom on a narrow screen), each layer ordered by the
// mean position of what its steps depend on, so that edges cross little.

import { svg } from "./dom.js";

const NODE_W = 168;
const NODE_H = 48;
const GAP_MAJOR = 56; // between layers
const GAP_MINOR = 18; // between steps of a layer
const PAD = 12;
const LABEL_CHARS = 20;

// What a step is doing, from its own status and its tasks' (a released step whose
// task runs is "running"; the store calls it "ready").
export function stepState(step) {
  const tasks = step.tasks || [];
  if (["completed", "failed", "skipped", "cancelled"].includes(step.status)) return step.status;
  if (tasks.some((t) => t.status === "running")) return "running";
  if (tasks.some((t) => t.status === "failed" || t.status === "timed_out")) return "failed";
  if (step.status === "ready" || tasks.some((t) => t.status === "pending")) return "pending";
  return step.status || "blocked";
}

function layerOf(step, runDepth) {
  return step.kind === "undo" ? runDepth + 1 + step.layer : step.layer;
}

// Layers of steps; an edge that skips layers passes through a placeholder in each
// layer between (as in Sugiyama's method), so it is routed beside the steps there
// instead of through them.
export function layout(steps) {
  const runDepth = Math.max(-1, ...steps.filter((s) => s.kind !== "undo").map((s) => s.layer));
  const known = new Set(steps.map((s) => s.id));
  const level = new Map(steps.map((s) => [s.id, layerOf(s, runDepth)]));
  const layers = new Map();
  const add = (index, entry) => {
    if (!layers.has(index)) layers.set(index, []);
    layers.get(index).push(entry);
  };
  const routes = [];
  for (const step of steps) add(level.get(step.id), { id: step.id, step, preds: [] });
  const entries = new Map([...layers.values()].flat().map((e) => [e.id, e]));
  for (const step of steps) {
    for (const dep of step.depends_on || []) {
      if (!known.has(dep)) continue;
      const via = [];
      let previous = dep;
      for (let index = level.get(dep) + 1; index < level.get(step.id); index += 1) {
        const id = `~${dep}~${step.id}~${index}`;
        const placeholder = { id, step: null, preds: [previous] };
        add(index, placeholder);
        entries.set(id, placeholder);
        via.push(id);
        previous = id;
      }
      entries.get(step.id).preds.push(previous);
      routes.push({ from: dep, to: step.id, via });
    }
  }
  const order = [...layers.keys()].sort((a, b) => a - b);
  const slot = new Map();
  for (const index of order) {
    const members = layers.get(index);
    const weight = (entry) => {
      const placed = entry.preds.filter((p) => slot.has(p)).map((p) => slot.get(p));
      return placed.length ? placed.reduce((a, b) => a + b, 0) / placed.length : Infinity;
    };
    const weights = new Map(members.map((e, i) => [e.id, [weight(e), i]]));
    members.sort((a, b) => {
      const [wa, ia] = weights.get(a.id);
      const [wb, ib] = weights.get(b.id);
      return wa === wb ? ia - ib : wa - wb;
    });
    members.forEach((entry, i) => slot.set(entry.id, i));
  }
  const widest = Math.max(1, ...order.map((i) => layers.get(i).length));
  const boxes = new Map();
  order.forEach((index, major) => {
    const members = layers.get(index);
    const offset = (widest - members.length) / 2;
    members.forEach((entry, minor) => boxes.set(entry.id, { major, minor: minor + offset, step: entry.step }));
  });
  return { boxes, routes, majors: order.length, minors: widest };
}

function place(box, vertical) {
  const along = PAD + box.major * ((vertical ? NODE_H : NODE_W) + GAP_MAJOR);
  const across = PAD + box.minor * ((vertical ? NODE_W : NODE_H) + GAP_MINOR);
  return vertical ? { x: across, y: along } : { x: along, y: across };
}

// Where an edge leaves a box and where it enters one.
function exitOf(at, vertical) {
  return vertical ? [at.x + NODE_W / 2, at.y + NODE_H] : [at.x + NODE_W, at.y + NODE_H / 2];
}

function entryOf(at, vertical) {
  return vertical ? [at.x + NODE_W / 2, at.y] : [at.x, at.y + NODE_H / 2];
}

function curve([x1, y1], [x2, y2], vertical) {
  if (vertical) {
    const mid = (y1 + y2) / 2;
    return `C${x1},${mid} ${x2},${mid} ${x2},${y2}`;
  }
  const mid = (x1 + x2) / 2;
  return `C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
}

function edgePath(points, vertical) {
  // points: the source box, the placeholders passed through, the target box.
  let here = exitOf(points[0], vertical);
  let d = `M${here[0]},${here[1]}`;
  for (const at of points.slice(1, -1)) {
    const enter = entryOf(at, vertical);
    const leave = exitOf(at, vertical);
    d += ` ${curve(here, enter, vertical)} L${leave[0]},${leave[1]}`;
    here = leave;
  }
  return `${d} ${curve(here, entryOf(points[points.length - 1], vertical), vertical)}`;
}

function clip(text, chars) {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

// The SVG of `steps`; `onSelect(step)` runs when a step is clicked or activated.
export function drawDag(steps, { vertical = false, onSelect = () => {} } = {}) {
  const { boxes, routes, majors, minors } = layout(steps);
  const size = (count, node, gap) => PAD * 2 + count * node + Math.max(0, count - 1) * gap;
  const width = vertical ? size(minors, NODE_W, GAP_MINOR) : size(majors, NODE_W, GAP_MAJOR);
  const height = vertical ? size(majors, NODE_H, GAP_MAJOR) : size(minors, NODE_H, GAP_MINOR);
  const root = svg("svg", {
    class: "dag",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": "workflow steps and their dependencies",
  });
  root.append(
    svg(
      "defs",
      {},
      svg(
        "marker",
        { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" },
        svg("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }),
      ),
    ),
  );
  const at = new Map([...boxes].map(([id, box]) => [id, place(box, vertical)]));
  for (const route of routes) {
    const points = [route.from, ...route.via, route.to].map((id) => at.get(id));
    root.append(
      svg("path", {
        class: `edge st-${stepState(boxes.get(route.from).step)}`,
        d: edgePath(points, vertical),
        "marker-end": "url(#arrow)",
      }),
    );
  }
  for (const step of steps) {
    const { x, y } = at.get(step.id);
    const state = stepState(step);
    const done = `${step.completed}/${step.total}`;
    const node = svg(
      "g",
      {
        class: `node st-${state}${step.kind === "undo" ? " undo" : ""}`,
        transform: `translate(${x},${y})`,
        "data-step": step.id,
        "data-status": state,
        tabindex: 0,
        role: "button",
        "aria-label": `step ${step.id}: ${state}, ${done} tasks done`,
      },
      svg("title", {}, `${step.id} — ${state} (${done})`),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
      svg("text", { x: 12, y: 20, class: "label" }, clip(step.id, LABEL_CHARS)),
      svg("text", { x: 12, y: 38, class: "sub" }, `${state.replace(/_/g, " ")} · ${done}`),
    );
    node.addEventListener("click", () => onSelect(step));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onSelect(step);
      }
    });
    root.append(node);
  }
  return root;
}
