// The playground: streams a chat through the real /v1/chat/completions.
// The browser's console session authenticates it (cookie + the page's CSRF token);
// every text from the model is put in the page with textContent, never as HTML.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const form = $("chat-form");
  const output = $("output");
  const thinking = $("thinking");
  const thinkingBox = $("thinking-box");
  const toolCalls = $("tool-calls");
  const status = $("status");
  let controller = null;

  async function loadModels() {
    const response = await fetch("/v1/models", { credentials: "same-origin" });
    if (!response.ok) {
      status.textContent = "HTTP " + response.status;
      return;
    }
    const body = await response.json();
    const select = $("model");
    for (const model of body.data) {
      const option = document.createElement("option");
      option.value = model.id;
      option.textContent = model.id;
      select.appendChild(option);
    }
    showCurl();
    // Knowledge bases the caller may read (none, or no embedding model: no choice).
    const kbs = await fetch("/v1/knowledge", { credentials: "same-origin" });
    if (kbs.ok) {
      for (const collection of (await kbs.json()).data) {
        const option = document.createElement("option");
        option.value = collection.name;
        option.textContent = collection.name;
        $("kbs").appendChild(option);
      }
    }
  }

  function showCitations(citations) {
    const list = $("citations");
    list.hidden = citations.length === 0;
    for (const citation of citations) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "/v1/knowledge/" + encodeURIComponent(citation.collection) + "/documents/" +
        encodeURIComponent(citation.document_id);
      link.textContent = "[" + citation.index + "] " + citation.document +
        " (" + citation.collection + ", " + citation.score.toFixed(3) + ")";
      const snippet = document.createElement("blockquote");
      snippet.textContent = citation.snippet;
      item.appendChild(link);
      item.appendChild(snippet);
      list.appendChild(item);
    }
  }

  function request() {
    const messages = [];
    const system = $("system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push({ role: "user", content: $("message").value });
    const body = {
      model: $("model").value,
      messages: messages,
      stream: true,
      temperature: Number($("temperature").value),
      max_tokens: Number($("max-tokens").value),
    };
    if ($("top-p").value !== "") body.top_p = Number($("top-p").value);
    if ($("seed").value !== "") body.seed = Number($("seed").value);
    const stop = $("stop-words").value.split(",").map((w) => w.trim()).filter((w) => w);
    if (stop.length) body.stop = stop;
    if ($("json-mode").checked) {
      // With a schema: enforced while sampling (json_schema); without: any JSON object.
      const schema = $("schema").value.trim();
      body.response_format = schema
        ? { type: "json_schema", json_schema: { name: "console", schema: JSON.parse(schema) } }
        : { type: "json_object" };
    }
    const kb = Array.from($("kbs").selectedOptions, (option) => option.value);
    if (kb.length) body.kb = kb;
    return body;
  }

  function showCurl() {
    let request_;
    try {
      request_ = request();
    } catch (error) {  // a schema that is not JSON yet
      $("curl").textContent = $("python").textContent = String(error);
      return;
    }
    showPython(request_);
    const body = JSON.stringify(request_, null, 2).replace(/'/g, "'\\''");
    $("curl").textContent =
      "curl " + window.location.origin + "/v1/chat/completions \\\n" +
      "  -H 'Authorization: Bearer $LUODI_API_KEY' \\\n" +
      "  -H 'Content-Type: application/json' \\\n" +
      "  -d '" + body + "'";
  }

  function showPython(body) {
    const extra = {};
    for (const [key, value] of Object.entries(body)) {
      if (!["model", "messages", "stream"].includes(key)) extra[key] = value;
    }
    // A Python literal of a JSON value (strings keep JSON's escapes, valid in Python too).
    const py = (value) => {
      if (value === null) return "None";
      if (typeof value === "boolean") return value ? "True" : "False";
      if (Array.isArray(value)) return "[" + value.map(py).join(", ") + "]";
      if (typeof value === "object") {
        return "{" + Object.entries(value).map(([k, v]) => JSON.stringify(k) + ": " + py(v))
          .join(", ") + "}";
      }
      return JSON.stringify(value);
    };
    const lines = [
      "from openai import OpenAI",
      "",
      'client = OpenAI(base_url="' + window.location.origin + '/v1", api_key="$LUODI_API_KEY")',
      "stream = client.chat.completions.create(",
      "    model=" + JSON.stringify(body.model) + ",",
      "    messages=" + py(body.messages) + ",",
      "    stream=True,",
    ];
    const known = ["temperature", "max_tokens", "top_p", "seed", "stop", "response_format"];
    const rest = {};
    for (const [key, value] of Object.entries(extra)) {
      if (known.includes(key)) lines.push("    " + key + "=" + py(value) + ",");
      else rest[key] = value;
    }
    if (Object.keys(rest).length) lines.push("    extra_body=" + py(rest) + ",");
    lines.push(")", "for chunk in stream:", '    print(chunk.choices[0].delta.content or "", end="")');
    $("python").textContent = lines.join("\n");
  }

  // Qwen3-style <think>…</think> in the content goes to the folded "thinking" box.
  let inThink = false;
  function addContent(text) {
    while (text) {
      const tag = inThink ? "</think>" : "<think>";
      const at = text.indexOf(tag);
      const part = at < 0 ? text : text.slice(0, at);
      if (inThink) {
        thinkingBox.hidden = false;
        thinking.textContent += part;
      } else {
        output.textContent += part;
      }
      if (at < 0) break;
      inThink = !inThink;
      text = text.slice(at + tag.length);
    }
  }

  function addDelta(delta) {
    if (delta.reasoning_content) {
      thinkingBox.hidden = false;
      thinking.textContent += delta.reasoning_content;
    }
    if (delta.content) addContent(delta.content);
    if (delta.tool_calls) {
      toolCalls.hidden = false;
      toolCalls.textContent += JSON.stringify(delta.tool_calls) + "\n";
    }
  }

  async function send(event) {
    event.preventDefault();
    output.textContent = "";
    thinking.textContent = "";
    toolCalls.textContent = "";
    thinkingBox.hidden = true;
    toolCalls.hidden = true;
    $("citations").textContent = "";
    $("citations").hidden = true;
    inThink = false;
    showCurl();
    controller = new AbortController();
    $("send").disabled = true;
    $("stop").disabled = false;
    status.textContent = "…";
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(request()),
        signal: controller.signal,
      });
      if (!response.ok) {
        const error = await response.json().catch(() => ({}));
        status.textContent = "HTTP " + response.status + ": " +
          ((error.error && error.error.message) || "");
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const eventText = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of eventText.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) {
              status.textContent = chunk.error.message || "error";
              continue;
            }
            for (const choice of chunk.choices || []) addDelta(choice.delta || {});
            if (chunk.citations) showCitations(chunk.citations);
          }
        }
      }
      status.textContent = "✓";
    } catch (error) {
      status.textContent = error.name === "AbortError" ? "■" : String(error);
    } finally {
      $("send").disabled = false;
      $("stop").disabled = true;
      controller = null;
    }
  }

  form.addEventListener("submit", send);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("json-mode").addEventListener("change", () => { $("schema-box").hidden = !$("json-mode").checked; });
  const watched = ["model", "temperature", "max-tokens", "top-p", "seed", "stop-words", "json-mode",
    "schema", "kbs", "system", "message"];
  for (const id of watched) {
    $(id).addEventListener("change", showCurl);
  }
  loadModels();
})();
