// A strict parser of the Prometheus text exposition format 0.0.4 for
// tests: it refuses anything a Prometheus server would refuse (bad names,
// bad escapes, bad numbers, a TYPE after its samples, interleaved or
// duplicate series, a histogram sample without its suffix) and returns
// the samples keyed by series, e.g. `name{a="x",b="y"}` with labels in
// name order.
#ifndef FLEETCAST_OBS_METRICS_TEXT_TEST_SUPPORT_H_
#define FLEETCAST_OBS_METRICS_TEXT_TEST_SUPPORT_H_

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace fleetcast::obs::testing {

struct ParsedMetrics {
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, std::string> help;   // family -> help
  std::map<std::string, double> samples;     // series key -> value
};

inline bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
              c == ':' ||
              (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

inline bool IsLabelName(std::string_view s) {
  return IsMetricName(s) && s.find(':') == std::string_view::npos &&
         !s.starts_with("__");
}

inline bool ParseValue(std::string_view s, double& out) {
  if (s == "+Inf" || s == "Inf") {
    out = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    out = -INFINITY;
    return true;
  }
  if (s == "NaN") {
    out = NAN;
    return true;
  }
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

inline Result<ParsedMetrics> ParseMetricsText(std::string_view text) {
  auto fail = [](size_t line, std::string what) {
    return MakeError(ErrorCode::kCorrupt, "line " + std::to_string(line),
                     std::move(what));
  };
  ParsedMetrics out;
  if (!text.empty() && !text.ends_with('\n')) {
    return fail(0, "text does not end with a newline");
  }
  std::set<std::string> finished;  // families whose samples are over
  std::set<std::string> with_samples;
  std::string current;  // family of the last sample
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++line_no;
    if (line.empty()) continue;
    if (line.starts_with('#')) {
      std::string_view rest = line.substr(1);
      if (!rest.starts_with(" HELP ") && !rest.starts_with(" TYPE ")) {
        continue;  // a plain comment
      }
      bool is_type = rest.starts_with(" TYPE ");
      rest.remove_prefix(6);
      size_t sp = rest.find(' ');
      std::string name(rest.substr(0, sp));
      std::string_view arg =
          sp == std::string_view::npos ? "" : rest.substr(sp + 1);
      if (!IsMetricName(name)) return fail(line_no, "bad metric name");
      if (is_type) {
        static const std::set<std::string_view> kTypes = {
            "counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.contains(arg)) return fail(line_no, "bad type");
        if (out.types.contains(name)) return fail(line_no, "second TYPE");
        if (with_samples.contains(name)) {
          return fail(line_no, "TYPE after samples");
        }
        out.types[name] = std::string(arg);
      } else {
        for (size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] == '\\') {
            if (i + 1 >= arg.size() ||
                (arg[i + 1] != '\\' && arg[i + 1] != 'n'))
              return fail(line_no, "bad escape in HELP");
            ++i;
          }
        }
        if (out.help.contains(name)) return fail(line_no, "second HELP");
        out.help[name] = std::string(arg);
      }
      continue;
    }
    // A sample: name[{labels}] value [timestamp]
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name(line.substr(0, i));
    if (!IsMetricName(name)) return fail(line_no, "bad sample name");
    std::map<std::string, std::string> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        size_t eq = line.find('=', i);
        if (eq == std::string_view::npos) return fail(line_no, "no '='");
        std::string lname(line.substr(i, eq - i));
        if (!IsLabelName(lname)) return fail(line_no, "bad label name");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') {
          return fail(line_no, "label value not quoted");
        }
        ++i;
        std::string value;
        while (true) {
          if (i >= line.size()) return fail(line_no, "unterminated value");
          char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) return fail(line_no, "bad escape");
            char e = line[i++];
            if (e == 'n') {
              value += '\n';
            } else if (e == '\\' || e == '"') {
              value += e;
            } else {
              return fail(line_no, "bad escape");
            }
          } else {
            value += c;
          }
        }
        if (labels.contains(lname)) return fail(line_no, "duplicate label");
        labels[lname] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
    }
    if (i >= line.size() || line[i] != ' ') return fail(line_no, "no value");
    std::string_view rest = line.substr(i + 1);
    size_t sp = rest.find(' ');
    double value = 0;
    if (!ParseValue(rest.substr(0, sp), value)) {
      return fail(line_no, "bad value");
    }
    if (sp != std::string_view::npos) {
      int64_t ts = 0;
      std::string_view t = rest.substr(sp + 1);
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), ts);
      if (ec != std::errc() || p != t.data() + t.size()) {
        return fail(line_no, "bad timestamp");
      }
    }
    // Which family the sample belongs to.
    std::string family = name;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.ends_with(suffix)) {
        std::string base = name.substr(0, name.size() - suffix.size());
        auto t = out.types.find(base);
        if (t != out.types.end() &&
            (t->second == "histogram" || t->second == "summary")) {
          family = base;
          if (suffix == "_bucket" && !labels.contains("le")) {
            return fail(line_no, "bucket without le");
          }
        }
      }
    }
    auto t = out.types.find(family);
    if (t != out.types.end() && t->second == "histogram" && family == name) {
      return fail(line_no, "histogram sample without suffix");
    }
    if (family != current) {
      if (finished.contains(family)) {
        return fail(line_no, "samples of a family are not contiguous");
      }
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    with_samples.insert(family);
    std::string key = name;
    if (!labels.empty()) {
      key += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) key += ',';
        first = false;
        key += k + "=\"" + v + "\"";
      }
      key += '}';
    }
    if (out.samples.contains(key)) return fail(line_no, "duplicate series");
    out.samples[key] = value;
  }
  return out;
}

}  // namespace fleetcast::obs::testing

#endif  // FLEETCAST_OBS_METRICS_TEXT_TEST_SUPPORT_H_
