#include "profile/flamegraph.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "profile/names.h"

namespace cppops::profile {
namespace {

constexpr double kFrameHeight = 16;      // one stack level, including a 1 px gap
constexpr double kFontSize = 12;
constexpr double kCharWidth = 0.6 * kFontSize;  // monospace advance, used to decide how much of a name fits
constexpr double kSidePad = 10;
constexpr double kTopPad = 56;           // title, subtitle, buttons
constexpr double kBottomPad = 34;        // the details line
constexpr double kMinFrameWidth = 0.1;   // px; narrower frames are not drawn (flamegraph.pl does the same)

// The interactivity, run by the browser that opens the file. Frames carry their place in sample units
// (data-s: first sample, data-n: how many), so zooming is exact; names come from each frame's <title>.
constexpr std::string_view kScript = R"JS(
"use strict";
var frames, details, matched, unzoomButton, searchButton, total, xpad, usable, charWidth;
var zoomStart = 0, zoomCount = 0, pattern = null;

function init() {
  var root = document.documentElement;
  total = +root.getAttribute("data-total");
  xpad = +root.getAttribute("data-xpad");
  usable = +root.getAttribute("data-usable");
  charWidth = +root.getAttribute("data-charwidth");
  zoomCount = total;
  var group = document.getElementById("frames");
  frames = [].slice.call(group.getElementsByTagName("g"));
  details = document.getElementById("details");
  matched = document.getElementById("matched");
  unzoomButton = document.getElementById("unzoom");
  searchButton = document.getElementById("search");
  group.addEventListener("mouseover", function (e) {
    var g = frameOf(e.target);
    if (g) details.textContent = "Function: " + label(g);
  });
  group.addEventListener("mouseout", function (e) {
    if (frameOf(e.target)) details.textContent = " ";
  });
  group.addEventListener("click", function (e) {
    var g = frameOf(e.target);
    if (g) zoom(g);
  });
  unzoomButton.addEventListener("click", function () { zoom(null); });
  searchButton.addEventListener("click", function () {
    if (pattern) search(null); else askSearch();
  });
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "f" || e.key === "F")) {
      e.preventDefault();
      askSearch();
    } else if (e.key === "Escape") {
      search(null);
    }
  });
}

function frameOf(node) {
  for (; node && node.getAttribute; node = node.parentNode) {
    if (node.hasAttribute("data-n")) return node;
  }
  return null;
}

function label(g) { return g.getElementsByTagName("title")[0].textContent; }

function nameOf(g) {
  var text = label(g), cut = text.lastIndexOf(" (");
  return cut < 0 ? text : text.substring(0, cut);
}

function fit(name, width) {
  var chars = Math.floor((width - 6) / charWidth);
  if (chars < 3) return "";
  return name.length <= chars ? name : name.substring(0, chars - 2) + "..";
}

// Frames that overlap the zoomed frame's samples are its callers (wider: drawn dimmed, cut to the view), itself
// and its callees (scaled up); every other frame is hidden.
function layout() {
  var end = zoomStart + zoomCount;
  frames.forEach(function (g) {
    var s = +g.getAttribute("data-s"), n = +g.getAttribute("data-n");
    var a = Math.max(s, zoomStart), b = Math.min(s + n, end);
    if (b <= a) {
      g.style.display = "none";
      return;
    }
    g.style.display = "";
    var x = xpad + (a - zoomStart) / zoomCount * usable, w = (b - a) / zoomCount * usable;
    var rect = g.getElementsByTagName("rect")[0], text = g.getElementsByTagName("text")[0];
    rect.setAttribute("x", x.toFixed(2));
    rect.setAttribute("width", w.toFixed(2));
    text.setAttribute("x", (x + 3).toFixed(2));
    text.textContent = fit(nameOf(g), w);
    g.classList.toggle("parent", s < zoomStart || s + n > end);
  });
}

function zoom(g) {
  zoomStart = g ? +g.getAttribute("data-s") : 0;
  zoomCount = g ? +g.getAttribute("data-n") : total;
  unzoomButton.classList.toggle("hide", zoomCount === total);
  layout();
}

function askSearch() {
  var text = window.prompt("Search for functions matching (a regular expression):", pattern ? pattern.source : "");
  if (text === null) return;
  if (text === "") {
    search(null);
    return;
  }
  try {
    search(new RegExp(text));
  } catch (err) {
    details.textContent = "Not a regular expression: " + text;
  }
}

// Highlights matching frames; the share counts each sample once, however many matching frames it passes through.
function search(re) {
  pattern = re;
  var spans = [];
  frames.forEach(function (g) {
    var hit = re !== null && re.test(nameOf(g));
    g.classList.toggle("match", hit);
    if (hit) spans.push([+g.getAttribute("data-s"), +g.getAttribute("data-n")]);
  });
  searchButton.textContent = re ? "Reset Search" : "Search";
  if (!re) {
    matched.textContent = " ";
    return;
  }
  spans.sort(function (p, q) { return p[0] - q[0]; });
  var covered = 0, reach = 0;
  spans.forEach(function (span) {
    var start = Math.max(span[0], reach), end = span[0] + span[1];
    if (end > start) {
      covered += end - start;
      reach = end;
    }
  });
  matched.textContent = "Matched: " + (100 * covered / total).toFixed(2) + "%";
}
)JS";

constexpr std::string_view kStyle = R"CSS(
text { font-family: monospace; font-size: 12px; fill: #000; }
#title { font-size: 17px; text-anchor: middle; }
#subtitle { fill: #555; text-anchor: middle; }
#matched { text-anchor: end; }
.button { fill: #225; cursor: pointer; text-decoration: underline; }
.hide { display: none; }
#frames g { cursor: pointer; }
#frames g:hover rect { stroke: #000; stroke-width: 0.5; }
#frames .match rect { fill: rgb(220, 0, 220); }
#frames .parent { opacity: 0.5; }
)CSS";

struct Node {
  std::string name;
  uint64_t count = 0;
  std::map<std::string, std::unique_ptr<Node>> children;  // by name: callees in alphabetical order
};

// Appends `text` escaped for XML character data and attribute values. Bytes that are not well-formed UTF-8, and
// control characters XML 1.0 forbids, become '?', so that no name can make the file unreadable.
void appendXml(std::string& out, std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default: out += (c < 0x20 && c != '\t' && c != '\n' && c != '\r') ? '?' : static_cast<char>(c);
      }
      ++i;
      continue;
    }
    size_t length = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (c >= 0xf5) length = 0;
    bool valid = length != 0 && i + length <= text.size();
    uint32_t code = valid ? c & (0xff >> (length + 1)) : 0;
    for (size_t k = 1; valid && k < length; ++k) {
      unsigned char next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xc0) == 0x80;
      code = (code << 6) | (next & 0x3f);
    }
    // Overlong forms, surrogates, beyond U+10FFFF, and the two non-characters XML excludes.
    valid = valid && !(length == 3 && code < 0x800) && !(length == 4 && (code < 0x10000 || code > 0x10ffff)) &&
            !(code >= 0xd800 && code <= 0xdfff) && code != 0xfffe && code != 0xffff;
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += '?';
      ++i;
    }
  }
}

std::string xml(std::string_view text) {
  std::string out;
  appendXml(out, text);
  return out;
}

// A warm color from the name alone, so a function has the same color in every graph.
std::string colorOf(std::string_view name) {
  uint32_t hash = 2166136261u;  // FNV-1a
  for (char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  unsigned red = 200 + hash % 56;
  unsigned green = 60 + (hash >> 8) % 160;
  unsigned blue = 20 + (hash >> 20) % 50;
  return fmt::format("rgb({},{},{})", red, green, blue);
}

std::string fit(const std::string& name, double width) {
  double chars = std::floor((width - 6) / kCharWidth);
  if (chars < 3) return "";
  size_t limit = static_cast<size_t>(chars);
  return name.size() <= limit ? name : name.substr(0, limit - 2) + "..";
}

class Renderer {
 public:
  Renderer(uint64_t total, double width, double height, std::string& out)
      : total_(total), usable_(width - 2 * kSidePad), height_(height), out_(out) {}

  // Depth-first, callers before callees; `start` is the node's first sample.
  void frame(const Node& node, uint64_t start, int depth) {
    double width = static_cast<double>(node.count) / static_cast<double>(total_) * usable_;
    if (width < kMinFrameWidth) return;
    double x = kSidePad + static_cast<double>(start) / static_cast<double>(total_) * usable_;
    double y = height_ - kBottomPad - (depth + 1) * kFrameHeight;
    double share = 100.0 * static_cast<double>(node.count) / static_cast<double>(total_);
    std::string color = depth == 0 ? "rgb(190,190,190)" : colorOf(node.name);
    out_ += fmt::format("<g data-s=\"{}\" data-n=\"{}\"><title>", start, node.count);
    appendXml(out_, node.name);
    out_ += fmt::format(" ({} sample{}, {:.2f}%)</title>", node.count, node.count == 1 ? "" : "s", share);
    out_ += fmt::format(
        "<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"{}\" rx=\"2\" ry=\"2\"/>", x, y,
        width, kFrameHeight - 1, color);
    out_ += fmt::format("<text x=\"{:.2f}\" y=\"{:.1f}\">", x + 3, y + kFrameHeight - 5);
    appendXml(out_, fit(node.name, width));
    out_ += "</text></g>\n";
    for (const auto& [name, child] : node.children) {
      frame(*child, start, depth + 1);
      start += child->count;
    }
  }

 private:
  uint64_t total_;
  double usable_;
  double height_;
  std::string& out_;
};

int depthOf(const Node& node) {
  int deepest = 0;
  for (const auto& [name, child] : node.children) deepest = std::max(deepest, depthOf(*child) + 1);
  return deepest;
}

}  // namespace

std::string renderFlameGraph(const Profile& profile, const FlameGraphOptions& options) {
  Node root;
  root.name = "all";
  for (const Sample& sample : profile.samples) {
    if (sample.count == 0) continue;
    std::vector<std::string> names = stackNames(profile, sample);
    if (options.thread_root) names.insert(names.begin(), threadTitle(sample));
    root.count += sample.count;
    Node* node = &root;
    for (std::string& name : names) {
      std::unique_ptr<Node>& child = node->children[name];
      if (!child) {
        child = std::make_unique<Node>();
        child->name = std::move(name);
      }
      child->count += sample.count;
      node = child.get();
    }
  }

  const std::string mode = profile.mode == Mode::kHeap ? "heap" : profile.mode == Mode::kWall ? "wall" : "cpu";
  const double width = std::max(options.width, 200);
  const double height = kTopPad + (depthOf(root) + 1) * kFrameHeight + kBottomPad;
  std::string title = options.title.empty() ? fmt::format("cppops {} profile of {}", mode, profile.pid)
                                            : options.title;
  std::string subtitle = fmt::format("{} sample{}", root.count, root.count == 1 ? "" : "s");
  if (profile.mode == Mode::kHeap) {
    const bool space = profile.heap_shown == kInuseSpace || profile.heap_shown == kAllocSpace;
    subtitle = (space ? formatBytes(root.count) : std::to_string(root.count)) + " " + profileTypeName(profile);
  }
  if (profile.period_ns != 0) {
    subtitle += fmt::format(" ({}) at {:.0f} Hz", formatDuration(root.count * profile.period_ns),
                            1e9 / static_cast<double>(profile.period_ns));
  }
  if (profile.duration_ns != 0) subtitle += fmt::format(" over {}", formatDuration(profile.duration_ns));
  if (profile.dropped != 0) subtitle += fmt::format(", {} dropped", profile.dropped);

  std::string out;
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  out += fmt::format(
      "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" onload=\"init()\" data-total=\"{2}\" data-xpad=\"{3:.0f}\" "
      "data-usable=\"{4:.0f}\" data-charwidth=\"{5:.2f}\">\n",
      width, height, root.count, kSidePad, width - 2 * kSidePad, kCharWidth);
  out += "<style type=\"text/css\"><![CDATA[";
  out += kStyle;
  out += "]]></style>\n<script type=\"text/ecmascript\"><![CDATA[";
  out += kScript;
  out += "]]></script>\n";
  out += fmt::format("<rect x=\"0\" y=\"0\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"#f6f6f0\"/>\n", width, height);
  out += fmt::format("<text id=\"title\" x=\"{:.0f}\" y=\"24\">{}</text>\n", width / 2, xml(title));
  out += fmt::format("<text id=\"subtitle\" x=\"{:.0f}\" y=\"42\">{}</text>\n", width / 2, xml(subtitle));
  out += fmt::format("<text id=\"unzoom\" class=\"button hide\" x=\"{:.0f}\" y=\"24\">Reset Zoom</text>\n",
                     kSidePad);
  out += fmt::format("<text id=\"search\" class=\"button\" x=\"{:.0f}\" y=\"24\">Search</text>\n",
                     width - kSidePad - 13 * kCharWidth);
  out += fmt::format("<text id=\"details\" x=\"{:.0f}\" y=\"{:.0f}\"> </text>\n", kSidePad, height - 12);
  out += fmt::format("<text id=\"matched\" x=\"{:.0f}\" y=\"{:.0f}\"> </text>\n", width - kSidePad, height - 12);
  out += "<g id=\"frames\">\n";
  if (root.count > 0) Renderer(root.count, width, height, out).frame(root, 0, 0);
  out += "</g>\n</svg>\n";
  return out;
}

}  // namespace cppops::profile
