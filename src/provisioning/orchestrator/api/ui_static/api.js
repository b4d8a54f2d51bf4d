// The REST API and the event stream, as the dashboard uses them. The session
// cookie authenticates; the header marks requests as the dashboard's own.

const HEADERS = { "X-Provisioning-UI": "1", Accept: "application/json" };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path) {
  const response = await fetch(path, { method, headers: HEADERS, credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/ui/login");
    throw new ApiError(401, "signed out");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && (body.error || body.detail);
    throw new ApiError(response.status, typeof detail === "string" ? detail : response.statusText);
  }
  return body;
}

export const get = (path) => request("GET", path);
export const post = (path) => request("POST", path);

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// One EventSource for the page; views subscribe to the parsed events.
export class EventFeed {
  constructor(onState) {
    this.listeners = new Set();
    this.onState = onState;
    this.open();
  }

  open() {
    this.source = new EventSource("/events?events=task,workflow");
    this.source.addEventListener("open", () => this.onState(true));
    this.source.addEventListener("error", () => this.onState(false));
    for (const kind of ["task", "workflow"]) {
      this.source.addEventListener(kind, (message) => {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        for (const listener of this.listeners) listener(event);
      });
    }
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

// Calls `fn` at most once per `ms`, after the last of a burst of triggers.
export function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}
