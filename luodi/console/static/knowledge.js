// Knowledge bases: list and create collections, upload documents (drag and drop, with
// progress), change a document's access list, delete it, see the sync sources and their
// runs and sync one now, and test a search, all through the live /v1/knowledge API.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const base = "/v1/knowledge";

  async function call(method, path, body) {
    const init = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error("HTTP " + response.status + ": " + ((data.error && data.error.message) || ""));
    }
    return data;
  }

  function kb() {
    return encodeURIComponent($("kb").value);
  }

  function cells(row, values) {
    for (const value of values) row.insertCell().textContent = value;
  }

  async function loadCollections(select) {
    const data = await call("GET", base);
    const list = $("kb");
    list.textContent = "";
    for (const collection of data.data) {
      const option = document.createElement("option");
      option.value = collection.name;
      option.textContent = collection.name + " (" + collection.documents + ")";
      list.appendChild(option);
    }
    if (select) list.value = select;
    await loadDocuments();
    await loadSources();
  }

  // Loads overlap (page load, a change of collection, a reload): each one renders only if
  // no later one started, and clears the table only once its answer is in, so rows are
  // never drawn twice.
  const latest = { documents: 0, sources: 0 };

  async function loadDocuments() {
    const rows = $("documents").querySelector("tbody");
    const turn = ++latest.documents;
    if (!$("kb").value) {
      rows.textContent = "";
      return;
    }
    const data = await call("GET", base + "/" + kb() + "/documents");
    if (turn !== latest.documents) return;
    rows.textContent = "";
    for (const doc of data.data) {
      const row = rows.insertRow();
      const when = doc.updated_at ? new Date(doc.updated_at * 1000).toISOString().slice(0, 19) : "";
      cells(row, [doc.name, doc.chunks]);
      row.insertCell().appendChild(accessEditor(doc));
      cells(row, [when]);
      const button = document.createElement("button");
      button.className = "danger";
      button.textContent = $("delete-text").textContent;
      button.addEventListener("click", () => guarded(async () => {
        await call("DELETE", base + "/" + kb() + "/documents/" + encodeURIComponent(doc.id));
        await loadDocuments();
      }));
      row.insertCell().appendChild(button);
    }
  }

  // A document's access list, editable in place (PATCH; the upload's rules apply).
  function accessEditor(doc) {
    const form = document.createElement("form");
    form.className = "inline access-form";
    const input = document.createElement("input");
    input.type = "text";
    input.name = "access";
    input.value = (doc.access || []).join(", ");
    input.setAttribute("aria-label", doc.name);
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "secondary small";
    save.textContent = $("save-text").textContent;
    form.appendChild(input);
    form.appendChild(save);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const access = input.value.split(",").map((t) => t.trim()).filter((t) => t);
      guarded(async () => {
        const changed = await call("PATCH", base + "/" + kb() + "/documents/" +
          encodeURIComponent(doc.id), { access: access });
        input.value = changed.access.join(", ");
      });
    });
    return form;
  }

  function time(seconds) {
    return seconds ? new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ") : "";
  }

  // Sync sources of the collection in the caller's scope, their latest runs, "sync now".
  async function loadSources() {
    const rows = $("sources").querySelector("tbody");
    const turn = ++latest.sources;
    if (!$("kb").value) {
      rows.textContent = "";
      $("no-sources").hidden = true;
      return;
    }
    let data;
    try {
      data = await call("GET", base + "/" + kb() + "/sources");
    } catch (error) {  // no kb:<name>:write: the sources are not this caller's to see
      if (turn !== latest.sources) return;
      rows.textContent = "";
      $("no-sources").hidden = false;
      return;
    }
    if (turn !== latest.sources) return;
    rows.textContent = "";
    $("no-sources").hidden = data.data.length > 0;
    for (const source of data.data) {
      const row = rows.insertRow();
      row.id = "source-" + source.id;
      const runs = source.runs.map((run) =>
        time(run.started_at) + " " + run.trigger + ": +" + run.added + " ~" + run.updated +
        " =" + run.unchanged + " −" + run.deleted +
        (Object.keys(run.failed).length ? " ✗" + Object.keys(run.failed).length : ""));
      cells(row, [
        source.id,
        source.locations.join("\n"),
        source.schedule || $("on-demand-text").textContent,
        time(source.last_sync_at),
        time(source.next_sync_at),
        runs.join("\n"),
      ]);
      row.cells[5].className = "runs";
      const button = document.createElement("button");
      button.className = "secondary";
      button.textContent = $("sync-text").textContent;
      button.addEventListener("click", () => guarded(async () => {
        await call("POST", base + "/" + kb() + "/sync", { source_id: source.id });
        await loadCollections($("kb").value);
      }));
      row.insertCell().appendChild(button);
    }
  }

  // fetch has no upload progress: XMLHttpRequest reports it.
  function upload(files) {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    form.append("access", $("access").value);
    const progress = $("progress");
    progress.hidden = false;
    progress.value = 0;
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", base + "/" + kb() + "/documents");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = (100 * event.loaded) / event.total;
      });
      xhr.addEventListener("load", () => {
        progress.value = 100;
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch (error) { /* not JSON */ }
        if (xhr.status >= 400) {
          reject(new Error("HTTP " + xhr.status + ": " + ((data.error && data.error.message) || "")));
        } else {
          resolve(data);
        }
      });
      xhr.addEventListener("error", () => reject(new Error("upload failed")));
      xhr.send(form);
    });
  }

  async function guarded(work) {
    status.textContent = "…";
    try {
      await work();
      status.textContent = "✓";
    } catch (error) {
      status.textContent = error.message;
    }
  }

  $("kb").addEventListener("change", () => guarded(async () => {
    await loadDocuments();
    await loadSources();
  }));
  $("create-kb").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("kb-name").value.trim();
    guarded(async () => {
      await call("POST", base, { name: name });
      await loadCollections(name);
    });
  });
  $("files").addEventListener("change", () => guarded(async () => {
    await upload($("files").files);
    await loadCollections($("kb").value);
  }));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    guarded(async () => {
      await upload(event.dataTransfer.files);
      await loadCollections($("kb").value);
    });
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const data = await call("POST", base + "/" + kb() + "/search", {
        query: $("query").value,
        top_k: Number($("top-k").value),
      });
      const rows = $("hits").querySelector("tbody");
      rows.textContent = "";
      for (const hit of data.data) {
        const row = rows.insertRow();
        const passage = (hit.heading ? hit.heading + " — " : "") + hit.text;
        cells(row, [hit.score.toFixed(3), hit.document + " #" + hit.position, passage]);
      }
    });
  });
  guarded(() => loadCollections(null));
})();
