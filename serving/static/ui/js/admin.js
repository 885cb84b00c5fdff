// The admin token, shared by the retrain, model and monitoring pages of one tab (sessionStorage
// only).
import { config, el } from "./app.js";

const KEY = "drugclf-admin-token";

export function bindToken(input) {
  input.value = sessionStorage.getItem(KEY) || "";
  input.addEventListener("change", () => sessionStorage.setItem(KEY, input.value.trim()));
}

/** The token entered on any page of this tab ("" when none). */
export function storedToken() {
  return sessionStorage.getItem(KEY) || "";
}

export function token(input) {
  const value = input.value.trim();
  sessionStorage.setItem(KEY, value);
  return value;
}

/** The text for a 401/403/404 answer of an admin route, or null for other answers. */
export function adminProblem(result) {
  if (result.status === 401) return "The admin token is missing or wrong.";
  if (result.status === 403) return `Not allowed: ${(result.data && result.data.message) || "the admin token is not valid"}.`;
  return null;
}

/** A note on how this server guards admin routes (null when a token is simply needed). */
export function adminNote() {
  if (config.admin === "closed") {
    return el("p", { class: "notice bad", id: "admin-closed" },
      "Admin actions are closed on this server: it has no admin token (set DRUGCLF_ADMIN_TOKEN).");
  }
  if (config.admin === "dev") {
    return el("p", { class: "notice", id: "admin-dev" },
      "Development mode: admin actions need no token from this machine.");
  }
  return null;
}
