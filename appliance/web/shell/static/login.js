// Sign-in form: JSON to /api/v1/auth/login, then to the page asked for (or the password page first).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    applianceError(form, "");
    const body = { username: form.username.value, password: form.password.value };
    const result = await applianceJson("POST", "/api/v1/auth/login", body, "");
    if (result.ok) {
      const next = result.data.data.must_change_password ? "/account/password" : form.dataset.next || "/";
      window.location.assign(next);
      return;
    }
    const err = result.data && result.data.error;
    if (result.status === 429) {
      applianceError(form, "Too many attempts. Wait a little and try again.");
    } else {
      applianceError(form, (err && err.message) || "Sign-in failed.");
    }
  });
});
