// Prometheus metrics for every fleetcast process: a thin layer over
// prometheus-cpp (registry, counter/gauge/histogram families, text
// exposition).
//
// A role owns one prometheus::Registry (held by shared_ptr so an HTTP route
// can keep it alive), defines its families once at start-up with
// AddCounter()/AddGauge()/AddHistogram() and keeps references to the series
// it updates on hot paths (a prometheus::Counter& is stable for the life of
// the registry and increments are lock-free). RenderMetrics() produces the
// text format 0.0.4 body served on GET /metrics; net::AddMetricsRoute()
// (src/net/metrics_route.h) installs that route, since obs must not depend
// on net (obs is usable from every layer).
//
// HttpMetrics counts answered HTTP requests by status code
// (fleetcast_http_requests_total{code}) and their latency
// (fleetcast_http_request_duration_seconds); its AccessHook() has the
// signature of net::HttpAccessHook.
//
// Thread-safety: prometheus-cpp's registry, families and series are safe
// from any thread; so are RenderMetrics() and HttpMetrics.
#ifndef FLEETCAST_OBS_METRICS_H_
#define FLEETCAST_OBS_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fleetcast::obs {

// The Content-Type of a RenderMetrics() body.
inline constexpr std::string_view kMetricsContentType =
    "text/plain; version=0.0.4; charset=utf-8";

using Labels = prometheus::Labels;  // std::map<std::string, std::string>
using CounterFamily = prometheus::Family<prometheus::Counter>;
using GaugeFamily = prometheus::Family<prometheus::Gauge>;
using HistogramFamily = prometheus::Family<prometheus::Histogram>;

// Registers a family on `registry`. Names must match
// [a-zA-Z_:][a-zA-Z0-9_:]* (counters end in "_total" by convention);
// prometheus-cpp throws std::invalid_argument otherwise, which is a bug in
// the caller (names are constants). Registering a name twice with the same
// type returns the existing family.
CounterFamily& AddCounter(prometheus::Registry& registry,
                          const std::string& name, const std::string& help);
GaugeFamily& AddGauge(prometheus::Registry& registry, const std::string& name,
                      const std::string& help);
HistogramFamily& AddHistogram(prometheus::Registry& registry,
                              const std::string& name, const std::string& help);

// Every family of `registry` in the Prometheus text exposition format
// 0.0.4 (prometheus::TextSerializer), ready to serve with
// kMetricsContentType.
std::string RenderMetrics(const prometheus::Registry& registry);

// Buckets (seconds) of request-latency histograms: 1 ms .. 10 s.
std::vector<double> LatencyBuckets();

// The same signature as net::HttpAccessHook: (method, route pattern,
// status, duration).
using AccessHookFn =
    std::function<void(std::string_view method, std::string_view route,
                       int status, std::chrono::nanoseconds duration)>;

// fleetcast_http_requests_total{code} and
// fleetcast_http_request_duration_seconds, shared by every HTTP server.
class HttpMetrics {
 public:
  explicit HttpMetrics(prometheus::Registry& registry);
  HttpMetrics(const HttpMetrics&) = delete;
  HttpMetrics& operator=(const HttpMetrics&) = delete;

  void Observe(int status, std::chrono::nanoseconds duration);
  // Calls Observe(); install with HttpServer::SetAccessHook(). The hook
  // refers to this object, which must outlive the server.
  AccessHookFn AccessHook();

  prometheus::Counter& requests(int status);

 private:
  CounterFamily& requests_;
  prometheus::Histogram& duration_;
};

}  // namespace fleetcast::obs

#endif  // FLEETCAST_OBS_METRICS_H_
