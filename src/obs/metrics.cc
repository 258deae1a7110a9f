#include "obs/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace fleetcast::obs {

CounterFamily& AddCounter(prometheus::Registry& registry,
                          const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

GaugeFamily& AddGauge(prometheus::Registry& registry, const std::string& name,
                      const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

HistogramFamily& AddHistogram(prometheus::Registry& registry,
                              const std::string& name,
                              const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

std::string RenderMetrics(const prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return std::move(out).str();
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,  0.5,    1,     2.5,  5,     10};
}

HttpMetrics::HttpMetrics(prometheus::Registry& registry)
    : requests_(AddCounter(registry, "fleetcast_http_requests_total",
                           "HTTP requests answered, by status code.")),
      duration_(AddHistogram(registry,
                             "fleetcast_http_request_duration_seconds",
                             "Time taken to answer an HTTP request, in "
                             "seconds.")
                    .Add({}, LatencyBuckets())) {}

prometheus::Counter& HttpMetrics::requests(int status) {
  return requests_.Add({{"code", std::to_string(status)}});
}

void HttpMetrics::Observe(int status, std::chrono::nanoseconds duration) {
  requests(status).Increment();
  duration_.Observe(std::chrono::duration<double>(duration).count());
}

AccessHookFn HttpMetrics::AccessHook() {
  return
      [this](std::string_view, std::string_view, int status,
             std::chrono::nanoseconds duration) { Observe(status, duration); };
}

}  // namespace fleetcast::obs
