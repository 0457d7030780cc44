// The auditor's API, called with the token the user gave (kept in this tab's sessionStorage).

const TOKEN_KEY = "accord.audit.token";

/** The API refused the token (401) or its permissions (403). */
export class AuthError extends Error {
  constructor(status, detail) {
    super(detail || (status === 401 ? "The token was not accepted." : "The token lacks audit:read."));
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** The Authorization header of every call. */
export function authorization(value = token.get()) {
  return { Authorization: `Bearer ${value}` };
}

/** Relative to the page, so the dashboard also works behind a path prefix. */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** GET a JSON resource; AuthError on 401/403, Error with the problem's detail otherwise. */
export async function get(path, params = {}, tokenValue = undefined) {
  const response = await fetch(url(path, params), {
    headers: { ...authorization(tokenValue), Accept: "application/json" },
    cache: "no-store",
  });
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(response.status, await detail(response));
  }
  if (!response.ok) {
    throw new Error((await detail(response)) || `${path} answered ${response.status}`);
  }
  return response.json();
}

async function detail(response) {
  try {
    return (await response.json()).detail;
  } catch {
    return "";
  }
}

/** Every record matching the filters, page after page (at most `max`). */
export async function records(filters, max = 5000) {
  const items = [];
  let after = 0;
  while (items.length < max) {
    const page = await get("v1/audit/events", { ...filters, after, limit: 1000 });
    items.push(...page.items);
    if (page.next_after === null || page.next_after === undefined) break;
    after = page.next_after;
  }
  return items;
}
