// JSON written straight into text, for documents too large to build as a DOM first: a 1,000-thread stack dump is
// ~3 MB of JSON, which nlohmann::json builds and prints in ~100 ms and a string append writes in a few.
#pragma once

#include <string>
#include <string_view>

namespace cppops::render {

// Appends `text` as a JSON string literal: quoted and escaped, with every byte that is not part of valid UTF-8
// replaced by U+FFFD, so that a thread name made of arbitrary bytes still yields a document any parser accepts.
void appendJsonString(std::string& out, std::string_view text);

}  // namespace cppops::render
