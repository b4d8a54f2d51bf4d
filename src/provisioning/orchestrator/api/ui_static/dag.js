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

export function layout(steps) {
  const runDepth = Math.max(-1, ...steps.filter((s) => s.kind !== "undo").map((s) => s.layer));
  const layers = new Map();
  for (const step of steps) {
    const index = layerOf(step, runDepth);
    if (!layers.has(index)) layers.set(index, []);
    layers.get(index).push(step);
  }
  const order = [...layers.keys()].sort((a, b) => a - b);
  const slot = new Map();
  for (const index of order) {
    const members = layers.get(index);
    const weight = (step) => {
      const known = (step.depends_on || []).filter((d) => slot.has(d)).map((d) => slot.get(d));
      return known.length ? known.reduce((a, b) => a + b, 0) / known.length : Infinity;
    };
    const weights = new Map(members.map((s, i) => [s.id, [weight(s), i]]));
    members.sort((a, b) => {
      const [wa, ia] = weights.get(a.id);
      const [wb, ib] = weights.get(b.id);
      return wa === wb ? ia - ib : wa - wb;
    });
    members.forEach((step, i) => slot.set(step.id, i));
  }
  const widest = Math.max(1, ...order.map((i) => layers.get(i).length));
  const boxes = new Map();
  order.forEach((index, major) => {
    const members = layers.get(index);
    const offset = ((widest - members.length) * 1) / 2;
    members.forEach((step, minor) => boxes.set(step.id, { major, minor: minor + offset, step }));
  });
  return { boxes, majors: order.length, minors: widest };
}

function place(box, vertical) {
  const along = PAD + box.major * ((vertical ? NODE_H : NODE_W) + GAP_MAJOR);
  const across = PAD + box.minor * ((vertical ? NODE_W : NODE_H) + GAP_MINOR);
  return vertical ? { x: across, y: along } : { x: along, y: across };
}

function edgePath(from, to, vertical) {
  if (vertical) {
    const x1 = from.x + NODE_W / 2;
    const y1 = from.y + NODE_H;
    const x2 = to.x + NODE_W / 2;
    const y2 = to.y;
    const mid = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`;
  }
  const x1 = from.x + NODE_W;
  const y1 = from.y + NODE_H / 2;
  const x2 = to.x;
  const y2 = to.y + NODE_H / 2;
  const mid = (x1 + x2) / 2;
  return `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
}

function clip(text, chars) {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

// The SVG of `steps`; `onSelect(step)` runs when a step is clicked or activated.
export function drawDag(steps, { vertical = false, onSelect = () => {} } = {}) {
  const { boxes, majors, minors } = layout(steps);
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
  for (const step of steps) {
    for (const dep of step.depends_on || []) {
      if (!at.has(dep)) continue;
      root.append(
        svg("path", {
          class: `edge st-${stepState(boxes.get(dep).step)}`,
          d: edgePath(at.get(dep), at.get(step.id), vertical),
          "marker-end": "url(#arrow)",
        }),
      );
    }
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
