// The stats figures as `stats` and the one-screen summary both show them.
#pragma once

#include <nlohmann/json.hpp>

#include "protocol/messages.h"
#include "render/table.h"

namespace cppops::cli {

nlohmann::json statsJson(const protocol::StatsReply& stats);
double uptimeSeconds(const protocol::StatsReply& stats);
void addStatsRows(render::Table& table, const protocol::StatsReply& stats);

}  // namespace cppops::cli
