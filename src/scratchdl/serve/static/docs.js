// The API page: /openapi.json rendered as plain HTML (FastAPI's own /docs needs a CDN).
"use strict";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function describe(schema) {
  if (!schema) return "";
  if (schema.anyOf) return schema.anyOf.map(describe).join(" or ");
  const limits = ["minimum", "maximum", "maxLength"]
    .filter((key) => key in schema)
    .map((key) => `${key} ${schema[key]}`);
  return [schema.type || "", ...limits].join(", ");
}

async function start() {
  const spec = await (await fetch("/openapi.json")).json();
  const list = document.getElementById("endpoints");
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const block = element("section", "", "endpoint");
      const title = element("h3");
      title.append(element("span", method.toUpperCase(), "method"), element("code", path));
      block.append(title, element("p", op.summary || ""));
      if (op.description) block.append(element("p", op.description, "hint"));
      const params = op.parameters || [];
      if (params.length) {
        const items = element("ul");
        for (const p of params) {
          const text = `${p.name} (${p.in}${p.required ? ", required" : ""}): ` +
            `${describe(p.schema)}${p.description ? " — " + p.description : ""}`;
          items.append(element("li", text));
        }
        block.append(items);
      }
      if (op.requestBody) {
        const types = Object.keys(op.requestBody.content).join(", ");
        block.append(element("p", `Body: ${types}. ${op.requestBody.description || ""}`, "hint"));
      }
      const codes = Object.keys(op.responses || {}).join(", ");
      block.append(element("p", `Responses: ${codes}`, "hint"));
      list.append(block);
    }
  }
}

start();
