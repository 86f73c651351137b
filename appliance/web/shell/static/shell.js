// Shared helpers for shell pages: JSON calls with the session's CSRF token, and the sign-out button.
"use strict";

async function applianceCsrf() {
  const resp = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
  if (!resp.ok) return "";
  return (await resp.json()).data.csrf_token || "";
}

async function applianceJson(method, url, body, csrf) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(url, { method, headers, credentials: "same-origin", body: JSON.stringify(body || {}) });
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  return { ok: resp.ok, status: resp.status, data };
}

function applianceError(form, message) {
  const box = form.querySelector(".error");
  box.textContent = message;
  box.hidden = !message;
}

document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("signout");
  if (!out) return;
  out.addEventListener("click", async () => {
    await applianceJson("POST", "/api/v1/auth/logout", {}, await applianceCsrf());
    window.location.assign("/login");
  });
});
