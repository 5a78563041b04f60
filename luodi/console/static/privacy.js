// The privacy rule tester: masks a text through the live POST /v1/pii/anonymize
// (the session's cookie and CSRF token), and reloads the rules for those who may.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const status = $("status");

  async function call(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error("HTTP " + response.status + ": " +
        ((data.error && data.error.message) || ""));
    }
    return data;
  }

  $("pii-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "…";
    // Pseudonyms are kept per conversation: each test is a conversation of its own.
    const conversation = "console-" + Date.now().toString(36) + Math.random().toString(36).slice(2);
    const body = { text: $("pii-text").value, conversation_id: conversation };
    const policy = $("policy").value.trim();
    if (policy) body.policy = policy;
    try {
      const data = await call("/v1/pii/anonymize", body);
      $("masked").textContent = data.text;
      const rows = $("findings").querySelector("tbody");
      rows.textContent = "";
      for (const item of data.items) {
        const row = rows.insertRow();
        for (const value of [item.entity_type, item.operator, item.text]) {
          row.insertCell().textContent = value;
        }
      }
      status.textContent = "✓";
    } catch (error) {
      status.textContent = error.message;
    }
  });

  const reload = $("reload");
  if (reload) {
    reload.addEventListener("click", async () => {
      status.textContent = "…";
      try {
        const data = await call("/admin/privacy/reload", {});
        status.textContent = $("reloaded-text").textContent + ": " +
          data.policies.join(", ");
      } catch (error) {
        status.textContent = error.message;
      }
    });
  }
})();
