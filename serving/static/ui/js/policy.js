// The Model page's "Traffic policy": send a share of requests to candidate versions, let
// shadows also predict after the answer, or go back to one model (GET / PUT / DELETE /routing,
// all admin: the current policy shows once the admin token is entered).
import { $, api, clear, el, errorText } from "./app.js";
import { adminNote, adminProblem, bindToken, token } from "./admin.js";
import { policyLocked, policyText } from "./versions.js";

let served = null;

function roleSelect(version, role) {
  return el("select", { "data-role-of": version, "aria-label": `Role of ${version}` },
    [["none", "not used"], ["candidate", "candidate (answers a share)"], ["shadow", "shadow (listens)"]]
      .map(([value, text]) => el("option", { value, selected: value === role }, text)));
}

function shareInput(version, share) {
  return el("input", { type: "number", min: "0", max: "100", step: "1", value: String(Math.round(share * 100)),
    "data-share-of": version, "aria-label": `Share of requests for ${version}, in percent`, class: "share" });
}

function renderForm(versions, reply, locked) {
  const p = reply.policy;
  const roles = new Map();
  if (p) {
    for (const c of p.candidates) roles.set(c.version, ["candidate", c.weight]);
    for (const s of p.shadow) roles.set(s.version, ["shadow", s.fraction]);
  }
  const others = versions.filter((v) => v.version !== served).reverse();
  clear($("#policy-table"),
    el("thead", {}, el("tr", {}, el("th", {}, "Version"), el("th", {}, "Role"), el("th", { class: "num" }, "Share %"))),
    el("tbody", {}, others.length ? others.map((v) => {
      const [role, share] = roles.get(v.version) || ["none", 0.1];
      return el("tr", { "data-version": v.version }, el("td", {}, el("code", {}, v.version)),
        el("td", {}, roleSelect(v.version, role)), el("td", { class: "num" }, shareInput(v.version, share)));
    }) : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "Only the served version is published: nothing to compare it with."))]));
  $("#sticky-key").value = p && p.sticky_key ? p.sticky_key : "";
  const now = $("#policy-now");
  now.textContent = locked || policyText(reply);
  now.classList.toggle("locked", Boolean(locked));
  // Saving a form that does not show the current policy would overwrite it unseen.
  $("#policy-save").disabled = Boolean(locked);
}

function policyFromForm() {
  const candidates = [];
  const shadow = [];
  for (const select of document.querySelectorAll("[data-role-of]")) {
    const version = select.dataset.roleOf;
    const share = Number(document.querySelector(`[data-share-of="${version}"]`).value) / 100;
    if (select.value === "candidate") candidates.push({ version, weight: share });
    if (select.value === "shadow") shadow.push({ version, fraction: share });
  }
  const sticky = $("#sticky-key").value.trim();
  return { primary: served, candidates, shadow, sticky_key: sticky || null };
}

async function load() {
  const [models, reply] = await Promise.all([api("/models"),
    api("/routing", { token: $("#policy-token").value.trim() })]);
  const locked = policyLocked(reply);
  if (!models.ok || (!reply.ok && !locked)) {
    $("#policy-message").textContent = errorText(models.ok ? reply : models);
    return;
  }
  served = models.data.current_version;
  renderForm(models.data.versions, reply.ok ? reply.data : { policy: null }, locked);
}

async function send(method) {
  const message = $("#policy-message");
  const result = await api("/routing", { method, json: method === "PUT" ? policyFromForm() : undefined,
    token: token($("#policy-token")) });
  if (result.ok) {
    await load(); // the saved policy is on the page before the page says it is saved
    message.className = "notice ok";
    message.textContent = method === "PUT"
      ? "Policy saved: every worker follows it within a second."
      : "Policy removed: the served version answers every request.";
    return;
  }
  message.className = "notice bad";
  const where = result.data && result.data.field ? ` (${result.data.field})` : "";
  message.textContent = adminProblem(result) || `${errorText(result)}${where}`;
}

async function main() {
  const note = adminNote();
  if (note) $("#policy-form").prepend(note);
  bindToken($("#policy-token"));
  $("#policy-token").addEventListener("change", () => load()); // the policy shows with the token
  $("#policy-form").addEventListener("submit", (e) => { e.preventDefault(); send("PUT"); });
  $("#policy-clear").addEventListener("click", () => send("DELETE"));
  await load();
  document.body.dataset.policyReady = "true";
}
main();
