// JSON text written without a DOM must be what a JSON parser reads back, whatever bytes a thread name holds.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "render/json_text.h"

using cppops::render::appendJsonString;

namespace {

std::string asJson(std::string_view text) {
  std::string out;
  appendJsonString(out, text);
  return out;
}

}  // namespace

TEST_CASE("JSON strings escape quotes, backslashes and control characters") {
  CHECK(asJson("plain") == R"("plain")");
  CHECK(asJson("a\"b\\c") == R"("a\"b\\c")");
  CHECK(asJson("line\nnext\ttab\r") == R"("line\nnext\ttab\r")");
  CHECK(asJson(std::string("nul\0bell\a", 9)) == R"("nul\u0000bell\u0007")");
  CHECK(nlohmann::json::parse(asJson(std::string("x\x1fy", 3))) == std::string("x\x1fy", 3));
}

TEST_CASE("JSON strings keep valid UTF-8 and replace every invalid byte with U+FFFD") {
  CHECK(asJson("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  const std::string replacement = "\xEF\xBF\xBD";
  CHECK(asJson("a\xFFz") == "\"a" + replacement + "z\"");                  // never valid
  CHECK(asJson("\xC0\xAF") == "\"" + replacement + replacement + "\"");    // overlong '/'
  CHECK(asJson("\xED\xA0\x80") == "\"" + replacement + replacement + replacement + "\"");  // surrogate
  CHECK(asJson("cut \xE2\x82") == "\"cut " + replacement + replacement + "\"");              // truncated
  CHECK(asJson("\xF4\x90\x80\x80") == "\"" + replacement + replacement + replacement + replacement + "\"");  // > U+10FFFF
  for (int byte = 0; byte < 256; ++byte) {
    const std::string text = "t" + std::string(1, static_cast<char>(byte)) + "\xC3";
    INFO(byte);
    CHECK_NOTHROW(nlohmann::json::parse(asJson(text)));
  }
}
