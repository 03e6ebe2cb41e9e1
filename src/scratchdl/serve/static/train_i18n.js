// scratchdl serve: the page's words in English and in Japanese (the book's terms), chosen by
// the browser's language, or by the switch in the header (remembered in localStorage).
// Every word is set with textContent: nothing here is read as HTML.

const WORDS = {
  en: {
    "tab.train": "Train",
    "tab.inside": "Draw & upload",
    "tab.testset": "Test set",
    "tab.runs": "Runs",
    "lang.switch": "日本語",
    "settings": "Settings",
    "preset": "Preset (the book's experiments)",
    "preset.none": "none: one run with these settings",
    "preset.runs": "Runs: ",
    "model": "Network",
    "net.two-layer": "TwoLayerNet (ch5)",
    "net.mlp": "MultiLayerNet (ch6)",
    "net.simple-cnn": "SimpleConvNet (ch7)",
    "hidden_layers": "Hidden layers",
    "hidden_size": "Units per hidden layer",
    "activation": "Activation function",
    "act.relu": "ReLU",
    "act.sigmoid": "sigmoid",
    "act.tanh": "tanh",
    "dataset": "Data",
    "data.mnist": "MNIST",
    "data.fashion-mnist": "Fashion-MNIST",
    "data.mnist-sample": "MNIST sample (shipped: 2000 images)",
    "train_size": "Training images (the first N; empty: all)",
    "optimizer": "Optimizer",
    "lr": "Learning rate",
    "batch_size": "Batch size",
    "epochs": "Epochs",
    "init": "Initial weights",
    "init.std": "std",
    "init.xavier": "Xavier",
    "init.he": "He",
    "init_std": "std value",
    "batchnorm": "Batch Normalization",
    "dropout": "Dropout ratio (0: none)",
    "weight_decay": "Weight decay λ",
    "augment": "Augmentation (shift, rotate, scale)",
    "seed": "Seed",
    "start": "Start",
    "stop": "Stop",
    "resume": "Resume",
    "resume.lr": "Resume at the learning rate of the settings",
    "jobs": "Jobs",
    "col.show": "show",
    "col.run": "run",
    "col.state": "state",
    "col.progress": "progress",
    "col.test": "test acc",
    "loss.title": "Loss per iteration",
    "loss.note": "log scale, smoothed over a few iterations",
    "acc.title": "Accuracy per epoch",
    "acc.note": "solid: test data, dashed: training data",
    "hist.title": "Activation histograms of the hidden layers",
    "hist.of": "of",
    "hist.after": "after iteration",
    "hist.layer": "layer {k}",
    "hist.zero": "zeros",
    "weights.title": "Weight histograms",
    "filters.title": "The first convolution layer's filters",
    "none.yet": "Start a run, or a preset: its curves appear here as it trains.",
    "state.queued": "waiting",
    "state.running": "training",
    "state.stopping": "stopping",
    "state.stopped": "stopped",
    "state.finished": "finished",
    "state.diverged": "diverged",
    "state.failed": "failed",
    "queue": "in the queue:",
    "epoch": "epoch",
    "iteration": "it.",
    "off": "Training from the page is off on this server (scratchdl serve --max-jobs 0).",
    "stream.lost": "The live updates were cut; reconnecting…",
    "started": "Started: ",
    "limits": "At most {max_jobs} jobs train at once, {queue_limit} more may wait.",
  },
  ja: {
    "tab.train": "学習",
    "tab.inside": "手書き・画像",
    "tab.testset": "テストデータ",
    "tab.runs": "学習の記録",
    "lang.switch": "English",
    "settings": "設定",
    "preset": "プリセット（本の実験）",
    "preset.none": "なし：この設定で 1 回学習",
    "preset.runs": "学習するもの：",
    "model": "ネットワーク",
    "net.two-layer": "2 層ニューラルネットワーク（5 章）",
    "net.mlp": "多層ニューラルネットワーク（6 章）",
    "net.simple-cnn": "CNN：SimpleConvNet（7 章）",
    "hidden_layers": "隠れ層の数",
    "hidden_size": "隠れ層のニューロンの数",
    "activation": "活性化関数",
    "act.relu": "ReLU 関数",
    "act.sigmoid": "シグモイド関数",
    "act.tanh": "tanh 関数",
    "dataset": "データセット",
    "data.mnist": "MNIST",
    "data.fashion-mnist": "Fashion-MNIST",
    "data.mnist-sample": "MNIST のサンプル（同梱の 2000 枚）",
    "train_size": "訓練データの枚数（先頭から N 枚、空欄ならすべて）",
    "optimizer": "最適化手法",
    "lr": "学習係数",
    "batch_size": "バッチサイズ",
    "epochs": "エポック数",
    "init": "重みの初期値",
    "init.std": "標準偏差を指定",
    "init.xavier": "Xavier の初期値",
    "init.he": "He の初期値",
    "init_std": "標準偏差",
    "batchnorm": "Batch Normalization",
    "dropout": "Dropout の比率（0 ならなし）",
    "weight_decay": "Weight decay（荷重減衰）の λ",
    "augment": "Data Augmentation（平行移動・回転・拡大縮小）",
    "seed": "乱数のシード",
    "start": "学習を開始",
    "stop": "停止",
    "resume": "再開",
    "resume.lr": "設定の学習係数で再開します",
    "jobs": "学習の一覧",
    "col.show": "表示",
    "col.run": "名前",
    "col.state": "状態",
    "col.progress": "進み具合",
    "col.test": "テストの認識精度",
    "loss.title": "イテレーションごとの損失関数の値",
    "loss.note": "対数目盛、数イテレーションで平滑化",
    "acc.title": "エポックごとの認識精度",
    "acc.note": "実線：テストデータ、破線：訓練データ",
    "hist.title": "隠れ層のアクティベーション分布",
    "hist.of": "：",
    "hist.after": "イテレーション",
    "hist.layer": "{k} 層目",
    "hist.zero": "0 の割合",
    "weights.title": "重みの分布",
    "filters.title": "1 層目の畳み込み層のフィルター",
    "none.yet": "学習かプリセットを開始すると、学習の進み具合がここに描かれます。",
    "state.queued": "待機中",
    "state.running": "学習中",
    "state.stopping": "停止しています",
    "state.stopped": "停止",
    "state.finished": "完了",
    "state.diverged": "発散",
    "state.failed": "失敗",
    "queue": "待ち順：",
    "epoch": "エポック",
    "iteration": "イテレーション",
    "off": "このサーバーではページからの学習は無効です（scratchdl serve --max-jobs 0）。",
    "stream.lost": "更新の受信が途切れました。再接続しています…",
    "started": "開始しました：",
    "limits": "同時に学習するのは {max_jobs} つまで、待てるのはさらに {queue_limit} つです。",
  },
};

// the other tabs' fixed words, by where they are on the page (their dynamic text stays English)
const PAGE = [
  ["#tabs button[data-view=inside]", "tab.inside"],
  ["#tabs button[data-view=testset]", "tab.testset"],
  ["#tabs button[data-view=runs]", "tab.runs"],
  ["#tabs button[data-view=train]", "tab.train"],
];
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

// Set the words of every [data-i18n] element under `root`, and of the other tabs.
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  if (root !== document) return;
  for (const [selector, key] of PAGE) {
    const el = document.querySelector(selector);
    if (el) el.textContent = t(key);
  }
  document.documentElement.lang = language;
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
