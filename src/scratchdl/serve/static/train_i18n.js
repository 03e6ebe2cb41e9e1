// scratchdl serve: the one mechanism for the words of the whole page (every tab, the header,
// the title), in English or in Japanese: chosen by the browser's language, or by the switch in
// the header (remembered in localStorage). The words are in i18n.js. Fixed words are marked
// data-i18n="key" (in index.html, or by the code that builds them); the words that code
// writes come from t() and are rewritten by its onLanguage() listener. Every word is set with
// textContent: nothing here is read as HTML. (Named train_ because the Train tab came first.)

import { WORDS } from "./i18n.js";

const STORE = "scratchdl-lang";
const listeners = [];

function initial() {
  try {
    const saved = localStorage.getItem(STORE);
    if (saved in WORDS) return saved;
  } catch (error) {
    // storage may be off: follow the browser
  }
  return (navigator.language || "en").toLowerCase().startsWith("ja") ? "ja" : "en";
}

let language = initial();

export function lang() {
  return language;
}

// The word for `key`, with {name} replaced by values[name].
export function t(key, values = {}) {
  const text = WORDS[language][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// Set the words of every [data-i18n] element under `root` (the whole page: <title> too).
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  if (root === document) document.documentElement.lang = language;
}

export function onLanguage(listener) {
  listeners.push(listener);
}

export function setLanguage(next) {
  language = next in WORDS ? next : "en";
  try {
    localStorage.setItem(STORE, language);
  } catch (error) {
    // not remembered: it still switches
  }
  translate();
  for (const listener of listeners) listener(language);
}

// The switch: a button in the header naming the other language.
export function addSwitch(header) {
  const button = document.createElement("button");
  button.type = "button";
  button.id = "lang";
  button.className = "lang";
  button.dataset.i18n = "lang.switch";
  button.textContent = t("lang.switch");
  button.addEventListener("click", () => setLanguage(language === "ja" ? "en" : "ja"));
  header.append(button);
}
