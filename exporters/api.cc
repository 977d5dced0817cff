#include "exporters/api.h"

#include "checks/dnsbl.h"
#include "exporters/report_format.h"

namespace repwatch {

void AddApiRoutes(HttpServer& server, std::shared_ptr<const Config> config, const StateStore& store) {
  server.AddRoute("GET", "/api/v1/ips/*", [config, &store](const HttpRequest& req) {
    auto ip = IpAddress::Parse(req.tail);
    if (!ip.ok()) return HttpResponse::Text(400, ip.error() + "\n");
    std::vector<std::string> zones;
    for (const auto& z : config->dnsbl)
      if (ZoneServes(z, ip.value().family())) zones.push_back(z.zone);
    auto stored = store.LoadIp(ip.value(), zones);
    if (!stored.ok()) return HttpResponse::Text(500, stored.error() + "\n");
    if (!stored.value()) return HttpResponse::Text(404, ip.value().ToString() + " has never been checked\n");
    HttpResponse resp;
    resp.content_type = "application/json";
    resp.body = IpReportJson(*stored.value()).dump() + "\n";
    return resp;
  });
}

}  // namespace repwatch
