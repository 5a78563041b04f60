// The playground: streams a chat through the real /v1/chat/completions.
// The browser's console session authenticates it (cookie + the page's CSRF token);
// every text from the model is put in the page with textContent, never as HTML.
// An assistant (support/<name>) keeps the conversation on the server, keyed by the
// X-Luodi-Conversation header; tools are sent as OpenAI function definitions and the
// calls the model makes can be answered with results, as a client would.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const form = $("chat-form");
  const output = $("output");
  const thinking = $("thinking");
  const thinkingBox = $("thinking-box");
  const status = $("status");
  const assistants = {};
  let controller = null;
  let conversation = "";
  let lastMessages = [];  // what the last request sent, for a tool-result follow-up
  let calls = [];  // the tool calls of the last answer, merged from stream deltas

  function option(select, value, text) {
    const item = document.createElement("option");
    item.value = value;
    item.textContent = text;
    select.appendChild(item);
    return item;
  }

  async function loadModels() {
    const response = await fetch("/v1/models", { credentials: "same-origin" });
    if (!response.ok) {
      status.textContent = "HTTP " + response.status;
      return;
    }
    const body = await response.json();
    // Assistants (support/<name>) are chosen in their own menu, which describes them.
    for (const model of body.data) {
      if (!model.id.startsWith("support/")) option($("model"), model.id, model.id);
    }
    showCurl();
    // Knowledge bases the caller may read (none, or no embedding model: no choice).
    const kbs = await fetch("/v1/knowledge", { credentials: "same-origin" });
    if (kbs.ok) {
      for (const collection of (await kbs.json()).data) {
        option($("kbs"), collection.name, collection.name);
      }
    }
    // Assistants this key may talk to.
    const found = await fetch("/v1/apps/support", { credentials: "same-origin" });
    if (found.ok) {
      for (const assistant of (await found.json()).data) {
        assistants[assistant.name] = assistant;
        option($("assistant"), assistant.name, assistant.name);
      }
    }
  }

  function newConversation() {
    // getRandomValues works on plain http too (randomUUID needs a secure context).
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    conversation = "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    $("conversation").textContent = conversation;
    $("transcript").textContent = "";
  }

  function assistant() {
    return assistants[$("assistant").value] || null;
  }

  function chooseAssistant() {
    const chosen = assistant();
    $("assistant-box").hidden = chosen === null;
    if (chosen === null) return;
    const models = $("model");
    if (!Array.from(models.options).some((o) => o.value === chosen.model)) {
      option(models, chosen.model, chosen.model);
    }
    models.value = chosen.model;
    const kbs = chosen.knowledge_bases.length ? " · " + chosen.knowledge_bases.join(", ") : "";
    $("assistant-about").textContent = chosen.model + kbs;
    const list = $("intents");
    list.textContent = "";
    for (const intent of chosen.intents) {
      const item = document.createElement("li");
      item.textContent = intent.name + (intent.description ? ": " + intent.description : "");
      item.title = intent.action;
      list.appendChild(item);
    }
    newConversation();
    showCurl();
  }

  function modelChanged() {
    // Picking another model by hand leaves the assistant.
    const chosen = assistant();
    if (chosen !== null && $("model").value !== chosen.model) {
      $("assistant").value = "";
      $("assistant-box").hidden = true;
    }
    showCurl();
  }

  function headers() {
    const extra = {};
    if (assistant() !== null) extra["X-Luodi-Conversation"] = conversation;
    return extra;
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

  function tools() {
    const text = $("tools").value.trim();
    if (!text) return null;
    const parsed = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error("tools: a JSON array of functions");
    return parsed;
  }

  // The tool-choice menu offers auto/required/none and forcing each declared function.
  function refreshToolChoice() {
    const select = $("tool-choice");
    const keep = select.value;
    for (const item of Array.from(select.options)) {
      if (item.dataset.function) item.remove();
    }
    let declared = [];
    try {
      declared = tools() || [];
    } catch (error) {  // not JSON yet
      declared = [];
    }
    for (const tool of declared) {
      const name = tool && tool.function && tool.function.name;
      if (typeof name !== "string") continue;
      option(select, "function:" + name, name).dataset.function = name;
    }
    if (Array.from(select.options).some((o) => o.value === keep)) select.value = keep;
    showCurl();
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
    const declared = tools();
    if (declared) {
      body.tools = declared;
      const choice = $("tool-choice").value;
      body.tool_choice = choice.startsWith("function:")
        ? { type: "function", function: { name: choice.slice("function:".length) } }
        : choice;
    }
    const kb = Array.from($("kbs").selectedOptions, (item) => item.value);
    if (kb.length) body.kb = kb;
    // Qwen3's switch, as vLLM and luodi take it; left out, the model's template decides.
    const thinkingMode = $("thinking-mode").value;
    if (thinkingMode) body.chat_template_kwargs = { enable_thinking: thinkingMode === "on" };
    return body;
  }

  function showCurl(sent) {
    let body = sent;
    if (body === undefined) {
      try {
        body = request();
      } catch (error) {  // a schema or tools that are not JSON yet
        $("curl").textContent = $("python").textContent = String(error);
        return;
      }
    }
    showPython(body);
    const json = JSON.stringify(body, null, 2).replace(/'/g, "'\\''");
    const lines = [
      "curl " + window.location.origin + "/v1/chat/completions \\",
      "  -H 'Authorization: Bearer $LUODI_API_KEY' \\",
      "  -H 'Content-Type: application/json' \\",
    ];
    for (const [name, value] of Object.entries(headers())) {
      lines.push("  -H '" + name + ": " + value + "' \\");
    }
    lines.push("  -d '" + json + "'");
    $("curl").textContent = lines.join("\n");
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
    const known = ["temperature", "max_tokens", "top_p", "seed", "stop", "response_format",
      "tools", "tool_choice"];
    const rest = {};
    for (const [key, value] of Object.entries(extra)) {
      if (known.includes(key)) lines.push("    " + key + "=" + py(value) + ",");
      else rest[key] = value;
    }
    if (Object.keys(rest).length) lines.push("    extra_body=" + py(rest) + ",");
    const sentHeaders = headers();
    if (Object.keys(sentHeaders).length) lines.push("    extra_headers=" + py(sentHeaders) + ",");
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

  // Stream deltas carry a call's id and name once and its arguments in pieces.
  function addToolCalls(deltas) {
    for (const delta of deltas) {
      const index = delta.index === undefined ? calls.length : delta.index;
      const call = calls[index] ||
        (calls[index] = { id: "", type: "function", function: { name: "", arguments: "" } });
      if (delta.id) call.id = delta.id;
      if (delta.function && delta.function.name) call.function.name = delta.function.name;
      if (delta.function && delta.function.arguments) {
        call.function.arguments += delta.function.arguments;
      }
    }
    showToolCalls();
  }

  function showToolCalls() {
    $("tool-box").hidden = calls.length === 0;
    const list = $("tool-calls");
    list.textContent = "";
    for (const call of calls) {
      const item = document.createElement("li");
      item.className = "tool-call";
      const head = document.createElement("div");
      head.className = "call";
      head.textContent = call.function.name + "(" + call.function.arguments + ")";
      const id = document.createElement("small");
      id.textContent = call.id;
      const result = document.createElement("textarea");
      result.className = "tool-result";
      result.rows = 2;
      result.dataset.id = call.id;
      item.appendChild(head);
      item.appendChild(id);
      item.appendChild(result);
      list.appendChild(item);
    }
  }

  function addDelta(delta) {
    if (delta.reasoning_content) {
      thinkingBox.hidden = false;
      thinking.textContent += delta.reasoning_content;
    }
    if (delta.content) addContent(delta.content);
    if (delta.tool_calls) addToolCalls(delta.tool_calls);
  }

  function remember(role, text) {
    const item = document.createElement("li");
    item.className = role;
    item.textContent = text;
    $("transcript").appendChild(item);
  }

  async function run(body) {
    output.textContent = "";
    thinking.textContent = "";
    thinkingBox.hidden = true;
    calls = [];
    showToolCalls();
    $("citations").textContent = "";
    $("citations").hidden = true;
    inThink = false;
    lastMessages = body.messages;
    showCurl(body);
    controller = new AbortController();
    $("send").disabled = true;
    $("stop").disabled = false;
    status.textContent = "…";
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        credentials: "same-origin",
        headers: Object.assign(
          { "Content-Type": "application/json", "X-CSRF-Token": csrf }, headers()),
        body: JSON.stringify(body),
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
      if (assistant() !== null) {
        remember("user", body.messages[body.messages.length - 1].content);
        remember("assistant", output.textContent);
      }
    } catch (error) {
      status.textContent = error.name === "AbortError" ? "■" : String(error);
    } finally {
      $("send").disabled = false;
      $("stop").disabled = true;
      controller = null;
    }
  }

  function send(event) {
    event.preventDefault();
    let body;
    try {
      body = request();
    } catch (error) {
      status.textContent = String(error);
      return;
    }
    run(body);
  }

  // The calls' results go back as "tool" messages after the assistant's own turn.
  function sendResults(event) {
    event.preventDefault();
    let body;
    try {
      body = request();
    } catch (error) {
      status.textContent = String(error);
      return;
    }
    const results = Array.from(document.querySelectorAll("#tool-calls .tool-result"));
    body.messages = lastMessages.concat(
      [{ role: "assistant", content: output.textContent || null, tool_calls: calls }],
      calls.map((call, i) => ({ role: "tool", tool_call_id: call.id, content: results[i].value })),
    );
    run(body);
  }

  form.addEventListener("submit", send);
  $("tool-result-form").addEventListener("submit", sendResults);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("json-mode").addEventListener("change", () => { $("schema-box").hidden = !$("json-mode").checked; });
  $("assistant").addEventListener("change", chooseAssistant);
  $("model").addEventListener("change", modelChanged);
  $("new-conversation").addEventListener("click", () => { newConversation(); showCurl(); });
  $("tools").addEventListener("input", refreshToolChoice);
  const watched = ["temperature", "max-tokens", "top-p", "seed", "stop-words", "json-mode",
    "thinking-mode",
    "schema", "kbs", "system", "message", "tool-choice"];
  for (const id of watched) {
    $(id).addEventListener("change", () => showCurl());
  }
  loadModels();
})();
