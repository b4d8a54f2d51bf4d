// The dashboard: a router over a few views, each drawn from the REST API and
// redrawn when the event stream says something it shows has changed.

import { EventFeed, debounce, get, post, query } from "./api.js";
import { drawDag, stepState } from "./dag.js";
import { badge, duration, empty, h, progressBar, put, shortId, table, when } from "./dom.js";

const WORKFLOW_STATUSES = [
  "queued", "running", "completed", "failed", "cancelled",
  "rollback_pending", "rolling_back", "rolled_back", "rollback_failed",
];
const PRIORITIES = ["critical", "high", "normal", "low"];
const TASK_DONE = new Set(["completed", "failed", "cancelled", "timed_out", "skipped"]);
const LOG_LINES_KEPT = 2000;
const NARROW = 700;

const view = () => document.getElementById("view");
let feed = null;

function toast(text, isError = false) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 3000);
}

function failed(error) {
  if (error && error.status === 401) return;
  toast(error && error.message ? error.message : String(error), true);
}

function setLive(on) {
  const live = document.getElementById("live");
  live.textContent = on ? "live" : "reconnecting…";
  live.className = `live ${on ? "on" : "off"}`;
}

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, search] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search || "") };
}

function link(href, ...children) {
  return h("a", { href }, ...children);
}

function workflowHref(id) {
  return `#/workflow/${encodeURIComponent(id)}`;
}

function taskHref(id) {
  return `#/task/${encodeURIComponent(id)}`;
}

// -- workflows ----------------------------------------------------------------------

async function workflowsView(params, signal) {
  const status = params.get("status") || "";
  const workspace = params.get("workspace") || "";
  const root = view();
  const list = h("div", { id: "workflow-list" });
  const statusSelect = h(
    "select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "any status"),
    WORKFLOW_STATUSES.map((s) => h("option", { value: s, selected: s === status }, s.replace(/_/g, " "))),
  );
  const workspaceSelect = h(
    "select", { id: "filter-workspace", name: "workspace" },
    h("option", { value: "" }, "any workspace"),
  );
  const apply = () => {
    window.location.hash = `#/workflows${query({ status: statusSelect.value, workspace: workspaceSelect.value })}`;
  };
  statusSelect.addEventListener("change", apply);
  workspaceSelect.addEventListener("change", apply);
  put(root, 
    h("div", { class: "title-row" }, h("h1", {}, "Workflows"),
      h("div", { class: "filters" },
        h("label", {}, "Status ", statusSelect),
        h("label", {}, "Workspace ", workspaceSelect))),
    list,
  );
  get("/ui/api/workspaces").then((known) => {
    for (const ws of known.workspaces) {
      workspaceSelect.append(h("option", { value: ws.name, selected: ws.name === workspace }, ws.name));
    }
    if (workspace && !known.workspaces.some((ws) => ws.name === workspace)) {
      workspaceSelect.append(h("option", { value: workspace, selected: true }, workspace));
    }
  }).catch(failed);

  const refresh = async () => {
    const page = await get(`/ui/api/workflows${query({ status, workspace, limit: 200 })}`);
    if (signal.aborted) return;
    if (!page.workflows.length) {
      put(list, empty(status || workspace ? "No workflow matches." : "No workflow yet: `provisioning workflow submit FILE`."));
      return;
    }
    put(list, table(
      ["Workflow", "Status", "Progress", "Tasks", "Workspace", "Created", "Took"],
      page.workflows.map((wf) => h(
        "tr", { "data-workflow": wf.id },
        h("td", {}, link(workflowHref(wf.id), wf.name), h("span", { class: "id" }, shortId(wf.id))),
        h("td", {}, badge(wf.status)),
        h("td", {}, progressBar(wf.progress, `progress of ${wf.name}`)),
        h("td", { class: "num" }, `${wf.tasks.completed}/${wf.tasks.total}`, wf.tasks.failed ? h("span", { class: "bad" }, ` (${wf.tasks.failed} failed)`) : null),
        h("td", { title: wf.workspace_path || "" }, wf.workspace || "—"),
        h("td", {}, when(wf.created_at)),
        h("td", {}, duration(wf.started_at, wf.completed_at)),
      )),
      { class: "workflows" },
    ));
  };
  await refresh();
  const later = debounce(() => refresh().catch(failed), 500);
  return feed.subscribe((event) => {
    if (event.type === "workflow" || event.workflow_id) later();
  });
}

// -- one workflow -------------------------------------------------------------------

function commandButton(label, verb, wf, enabled, explain) {
  return h("button", {
    type: "button",
    class: `action ${verb}`,
    "data-action": verb,
    disabled: !enabled,
    title: enabled ? explain : `not possible while ${wf.status.replace(/_/g, " ")}`,
    onclick: async () => {
      if (!window.confirm(`${label} workflow "${wf.name}" (${shortId(wf.id)})?\n${explain}`)) return;
      try {
        const after = await post(`/workflows/${encodeURIComponent(wf.id)}/${verb}`);
        const still = verb === "cancel" && ["queued", "running"].includes(after.status);
        toast(still ? "Cancelling: running tasks are being stopped" : `${label}: workflow is ${after.status.replace(/_/g, " ")}`);
      } catch (error) {
        failed(error);
      }
    },
  }, label);
}

function stepSection(step) {
  const state = stepState(step);
  return h(
    "section", { class: "step", id: `step-${step.id}`, "data-step-row": step.id },
    h("h3", {}, step.kind === "undo" ? "undo " : "", step.id.replace(/^undo:/, ""), " ", badge(state),
      h("span", { class: "muted" }, ` ${step.completed}/${step.total} done`,
        step.depends_on.length ? ` · after ${step.depends_on.join(", ")}` : "",
        step.on_failure !== "fail" ? ` · on failure: ${step.on_failure}` : "")),
    step.tasks.length ? table(
      ["Task", "Status", "Progress", "Attempt", "Error"],
      step.tasks.map((task) => h(
        "tr", { "data-task": task.id },
        h("td", {}, link(taskHref(task.id), task.name)),
        h("td", {}, badge(task.status)),
        h("td", {}, progressBar(task.progress, `progress of ${task.name}`),
          task.progress_message ? h("span", { class: "muted msg" }, task.progress_message) : null),
        h("td", { class: "num" }, task.attempt),
        h("td", { class: "error-cell" }, task.error || ""),
      )),
    ) : empty("No task."),
  );
}

async function workflowView(id, signal) {
  const root = view();
  const head = h("div", { class: "wf-head" });
  const graph = h("div", { class: "dag-wrap", id: "dag" });
  const stepsBox = h("div", { class: "steps" });
  put(root, head, graph, h("h2", {}, "Steps"), stepsBox);

  const refresh = async () => {
    const wf = await get(`/workflows/${encodeURIComponent(id)}?steps=true`);
    if (signal.aborted) return;
    const running = ["queued", "running"].includes(wf.status);
    const canRetry = ["failed", "cancelled", "rollback_failed"].includes(wf.status);
    const canRollback = wf.rollback_enabled && wf.phase === "run" &&
      ["completed", "failed", "cancelled"].includes(wf.status);
    put(head, 
      h("p", { class: "crumbs" }, link("#/workflows", "Workflows"), " / ", h("span", { class: "id" }, wf.id)),
      h("div", { class: "title-row" },
        h("h1", {}, wf.name, " ", badge(wf.status)),
        h("div", { class: "actions" },
          commandButton("Cancel", "cancel", wf, running, "Running tasks are stopped (their process groups); the rest is cancelled."),
          commandButton("Retry", "retry", wf, canRetry, "Runs again from the checkpoint: completed steps are kept."),
          commandButton("Roll back", "rollback", wf, canRollback, "Runs the undo of every completed operation, in reverse order."))),
      h("div", { class: "facts" },
        progressBar(wf.progress, "workflow progress"),
        h("span", {}, `${wf.tasks.completed}/${wf.tasks.total} tasks done`),
        wf.tasks.failed ? h("span", { class: "bad" }, `${wf.tasks.failed} failed`) : null,
        h("span", {}, `priority ${wf.priority}`),
        h("span", {}, `created ${when(wf.created_at)}`),
        wf.started_at ? h("span", {}, `took ${duration(wf.started_at, wf.completed_at)}`) : null),
      wf.error ? h("p", { class: "error-box" }, wf.error) : null,
    );
    const steps = wf.steps || [];
    const vertical = graph.clientWidth > 0 && graph.clientWidth < NARROW;
    graph.dataset.layout = vertical ? "vertical" : "horizontal";
    put(graph, drawDag(steps, {
      vertical,
      onSelect: (step) => {
        if (step.tasks.length === 1) {
          window.location.hash = taskHref(step.tasks[0].id);
        } else {
          document.getElementById(`step-${step.id}`)?.scrollIntoView({ behavior: "smooth" });
        }
      },
    }));
    put(stepsBox, ...steps.map(stepSection));
  };
  await refresh();
  const later = debounce(() => refresh().catch(failed), 150);
  const resize = debounce(() => refresh().catch(failed), 300);
  window.addEventListener("resize", resize);
  const unsubscribe = feed.subscribe((event) => {
    if (event.workflow_id === id) later();
  });
  return () => {
    unsubscribe();
    window.removeEventListener("resize", resize);
  };
}

// -- one task -----------------------------------------------------------------------

async function taskView(id, signal) {
  const root = view();
  const head = h("div", { class: "task-head" });
  const attemptsBox = h("div", { class: "attempts" });
  const logBox = h("pre", { class: "log", id: "log", tabindex: 0, "aria-label": "task log" });
  put(root, head, h("h2", {}, "Attempts"), attemptsBox,
    h("h2", {}, "Log ", h("span", { class: "muted", id: "log-state" }, "")), logBox);
  let after = 0;
  let done = false;

  const refresh = async () => {
    const task = await get(`/tasks/${encodeURIComponent(id)}`);
    if (signal.aborted) return;
    done = TASK_DONE.has(task.status);
    put(head, 
      h("p", { class: "crumbs" },
        task.workflow_id ? [link(workflowHref(task.workflow_id), "Workflow"), " / "] : [link("#/queue", "Queue"), " / "],
        h("span", { class: "id" }, task.id)),
      h("div", { class: "title-row" },
        h("h1", {}, task.name, " ", badge(task.status)),
        h("div", { class: "actions" },
          h("button", {
            type: "button", class: "action cancel", "data-action": "cancel-task", disabled: done,
            onclick: async () => {
              if (!window.confirm(`Cancel task "${task.name}" (${shortId(task.id)})?`)) return;
              try {
                await post(`/tasks/${encodeURIComponent(task.id)}/cancel`);
                toast("Cancel requested");
              } catch (error) {
                failed(error);
              }
            },
          }, "Cancel"))),
      h("div", { class: "facts" },
        progressBar(task.progress, "task progress"),
        task.progress_message ? h("span", { class: "msg", id: "progress-message" }, task.progress_message) : null,
        h("span", {}, `priority ${task.priority}`),
        h("span", {}, `attempt ${task.attempt} of ${task.retry.max_attempts}`),
        task.next_attempt_at && !done ? h("span", {}, `next try ${when(task.next_attempt_at)}`) : null,
        task.started_at ? h("span", {}, `took ${duration(task.started_at, task.completed_at)}`) : null),
      task.error ? h("p", { class: "error-box" }, task.error) : null,
    );
    put(attemptsBox, (task.attempts || []).length ? table(
      ["#", "Status", "Node", "Started", "Took", "Exit", "Error"],
      task.attempts.map((a) => h(
        "tr", {},
        h("td", { class: "num" }, a.number),
        h("td", {}, badge(a.status)),
        h("td", { class: "id" }, a.node_id),
        h("td", {}, when(a.started_at)),
        h("td", {}, duration(a.started_at, a.finished_at)),
        h("td", { class: "num" }, a.exit_code ?? ""),
        h("td", { class: "error-cell" }, a.error || ""),
      )),
    ) : empty("Not started yet."));
    document.getElementById("log-state").textContent = done ? "(ended)" : "(following)";
  };

  const pullLogs = async () => {
    const atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
    const page = await get(`/tasks/${encodeURIComponent(id)}/logs${query({ after, limit: 1000 })}`);
    if (signal.aborted) return;
    for (const line of page.lines) {
      logBox.append(h("span", { class: `line ${line.stream}`, "data-seq": line.seq }, line.line, "\n"));
    }
    after = page.next_after;
    while (logBox.childNodes.length > LOG_LINES_KEPT) logBox.firstChild.remove();
    if (atBottom && page.lines.length) logBox.scrollTop = logBox.scrollHeight;
    if (page.lines.length === 1000) await pullLogs();
  };

  await refresh();
  await pullLogs();
  const laterTask = debounce(() => refresh().catch(failed), 150);
  const laterLogs = debounce(() => pullLogs().catch(failed), 150);
  // The stream says when; a slow poll covers a stream that reconnects meanwhile.
  const poll = setInterval(() => { if (!done) laterLogs(); }, 3000);
  const unsubscribe = feed.subscribe((event) => {
    if (event.task_id !== id) return;
    if (event.event === "log") laterLogs();
    else {
      laterTask();
      laterLogs();
    }
  });
  return () => {
    unsubscribe();
    clearInterval(poll);
  };
}

// -- queue, nodes, workspaces -------------------------------------------------------

async function queueView(_params, signal) {
  const root = view();
  const box = h("div", {});
  put(root, h("h1", {}, "Queue"), box);
  const taskRow = (t) => h(
    "tr", { "data-task": t.id },
    h("td", {}, link(taskHref(t.id), t.name), h("span", { class: "id" }, shortId(t.id))),
    h("td", {}, badge(t.status)),
    h("td", {}, t.workflow_id ? link(workflowHref(t.workflow_id), shortId(t.workflow_id)) : "—"),
    h("td", {}, when(t.created_at)),
    h("td", {}, t.next_attempt_at ? when(t.next_attempt_at) : "now"),
  );
  const refresh = async () => {
    const [pending, running] = await Promise.all([
      get("/tasks?status=pending&limit=1000"),
      get("/tasks?status=running&limit=1000"),
    ]);
    if (signal.aborted) return;
    const sections = [h("h2", {}, `Running (${running.total})`),
      running.tasks.length ? table(["Task", "Status", "Workflow", "Queued", "Ready"], running.tasks.map(taskRow)) : empty("Nothing runs.")];
    for (const priority of PRIORITIES) {
      const mine = pending.tasks.filter((t) => t.priority === priority).reverse(); // oldest first: FIFO
      sections.push(h("h2", { "data-priority": priority }, `${priority} (${mine.length})`));
      sections.push(mine.length ? table(["Task", "Status", "Workflow", "Queued", "Ready"], mine.map(taskRow)) : empty("None waiting."));
    }
    if (pending.total > pending.tasks.length) sections.push(empty(`…and ${pending.total - pending.tasks.length} more pending.`));
    put(box, ...sections);
  };
  await refresh();
  const later = debounce(() => refresh().catch(failed), 1000);
  return feed.subscribe((event) => { if (event.type === "task" && event.event !== "log" && event.event !== "progress") later(); });
}

async function nodesView(_params, signal) {
  const root = view();
  const box = h("div", {});
  put(root, h("h1", {}, "Nodes"), box);
  const refresh = async () => {
    const status = await get("/status");
    if (signal.aborted) return;
    const storage = status.storage || {};
    put(box, 
      h("p", { class: "facts" },
        h("span", {}, `store: ${storage.backend || "?"}`),
        h("span", {}, `schema ${storage.schema_version ?? "?"}`),
        h("span", {}, `${status.nodes.length} node(s)`)),
      table(["Node", "Host", "PID", "Running", "Heartbeat", "Started"],
        status.nodes.map((n) => h(
          "tr", { "data-node": n.id, class: n.this ? "this" : "" },
          h("td", { class: "id" }, n.id, n.this ? h("span", { class: "muted" }, " (this one)") : null),
          h("td", {}, n.host),
          h("td", { class: "num" }, n.pid),
          h("td", { class: "num" }, `${n.running}/${n.max_concurrent}`),
          h("td", { class: n.seconds_since_heartbeat > 30 ? "bad" : "" }, `${n.seconds_since_heartbeat}s ago`),
          h("td", {}, when(new Date(n.started_at * 1000).toISOString())),
        ))),
      h("h2", {}, "Tasks by status"),
      table(["Status", "Tasks"], Object.entries(status.tasks || {}).map(([s, n]) => h("tr", {}, h("td", {}, badge(s)), h("td", { class: "num" }, n)))),
    );
  };
  await refresh();
  const timer = setInterval(() => refresh().catch(failed), 5000);
  return () => clearInterval(timer);
}

async function workspacesView(_params, signal) {
  const root = view();
  const known = await get("/ui/api/workspaces");
  if (signal.aborted) return null;
  const cards = known.workspaces.map((ws) => h(
    "section", { class: "card", "data-workspace": ws.name },
    h("h2", {}, ws.name, " ", h("span", { class: "muted id" }, ws.path)),
    h("p", {}, link(`#/workflows${query({ workspace: ws.name })}`, `${ws.workflows} workflow(s)`)),
    ws.infras.map((infra) => [
      h("h3", {}, `infra ${infra.name}`),
      infra.problem ? h("p", { class: "bad" }, infra.problem) : null,
      infra.servers.length ? table(["Server", "Provider", "Status", "Address", "Plan", "Taskservs"],
        infra.servers.map((s) => h(
          "tr", { "data-server": s.hostname },
          h("td", {}, s.hostname),
          h("td", {}, s.provider || ""),
          h("td", {}, s.status ? badge(s.status) : ""),
          h("td", { class: "id" }, s.address || ""),
          h("td", {}, s.plan || ""),
          h("td", {}, s.taskservs.length ? s.taskservs.map((t) => h("span", { class: "chip" }, t.version ? `${t.name} ${t.version}` : t.name)) : "—"),
        ))) : empty("No server recorded."),
    ]),
  ));
  put(root, h("h1", {}, "Workspaces"),
    ...(cards.length ? cards : [empty("No workspace seen yet: workflows of `provisioning server|taskserv|cluster create` show theirs here.")]));
  return null;
}

// -- router -------------------------------------------------------------------------

let current = { cleanup: null, abort: null };

async function route() {
  if (current.cleanup) current.cleanup();
  if (current.abort) current.abort.abort();
  const abort = new AbortController();
  current = { cleanup: null, abort };
  const { parts, params } = parseHash();
  const [page, id] = parts;
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === (page || "workflows") ||
      ((page === "workflow" || page === "task") && a.dataset.nav === "workflows"));
  }
  let render;
  if (page === "workflow" && id) render = () => workflowView(id, abort.signal);
  else if (page === "task" && id) render = () => taskView(id, abort.signal);
  else if (page === "queue") render = () => queueView(params, abort.signal);
  else if (page === "nodes") render = () => nodesView(params, abort.signal);
  else if (page === "workspaces") render = () => workspacesView(params, abort.signal);
  else render = () => workflowsView(params, abort.signal);
  try {
    const cleanup = await render();
    if (abort.signal.aborted) {
      if (cleanup) cleanup();
    } else {
      current.cleanup = cleanup;
    }
  } catch (error) {
    if (error && error.status === 404) {
      put(view(), h("h1", {}, "Not found"), h("p", {}, error.message), link("#/workflows", "All workflows"));
    } else {
      failed(error);
    }
  }
}

feed = new EventFeed(setLive);
window.addEventListener("hashchange", route);
route();
