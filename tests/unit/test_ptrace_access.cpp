// Why ptrace was refused, and what to do next: one explanation per cause, from the facts /proc shows.
#include <catch2/catch.hpp>
#include <cerrno>

#include "proc/ptrace_access.h"

using namespace cppops;
using namespace cppops::proc;

namespace {

PtraceFacts sameUserNoCapability() {
  PtraceFacts facts;
  facts.pid = 4242;
  facts.name = "server";
  facts.target_uid = 1000;
  facts.own_euid = 1000;
  facts.own_cap_sys_ptrace = false;
  facts.yama_scope = 0;
  return facts;
}

bool says(const Error& error, const std::string& text) { return error.message.find(text) != std::string::npos; }

}  // namespace

TEST_CASE("ptrace refusals: each cause gets its own explanation and next step") {
  SECTION("another user's process") {
    PtraceFacts facts = sameUserNoCapability();
    facts.target_uid = 0;
    Error e = explainPtraceDenied(facts, EPERM, "stack");
    CHECK(e.kind == ErrorKind::kPermission);
    CHECK(says(e, "cannot ptrace process 4242 (server)"));
    CHECK(says(e, "belongs to user root"));
    CHECK(says(e, "sudo cppops stack 4242"));
    CHECK(says(explainPtraceDenied(facts, EPERM, "profile"), "sudo cppops profile 4242"));
  }
  SECTION("Yama ptrace_scope 1: descendants only") {
    PtraceFacts facts = sameUserNoCapability();
    facts.yama_scope = 1;
    Error e = explainPtraceDenied(facts, EPERM, "stack");
    CHECK(says(e, "kernel.yama.ptrace_scope = 1"));
    CHECK(says(e, "setcap cap_sys_ptrace+ep"));
    CHECK(says(e, "sysctl kernel.yama.ptrace_scope=0"));
  }
  SECTION("Yama ptrace_scope 2: CAP_SYS_PTRACE only") {
    PtraceFacts facts = sameUserNoCapability();
    facts.yama_scope = 2;
    Error e = explainPtraceDenied(facts, EPERM, "stack");
    CHECK(says(e, "kernel.yama.ptrace_scope = 2"));
    CHECK(says(e, "run cppops as root"));
  }
  SECTION("Yama ptrace_scope 3: disabled, even for root") {
    PtraceFacts facts = sameUserNoCapability();
    facts.own_euid = 0;
    facts.own_cap_sys_ptrace = true;
    facts.yama_scope = 3;
    Error e = explainPtraceDenied(facts, EPERM, "stack");
    CHECK(says(e, "ptrace is disabled on this machine"));
    CHECK(says(e, "LD_PRELOAD=libcppops_agent.so"));
  }
  SECTION("root in a container without CAP_SYS_PTRACE") {
    PtraceFacts facts = sameUserNoCapability();
    facts.own_euid = 0;
    facts.target_uid = 0;
    Error e = explainPtraceDenied(facts, EPERM, "stack");
    CHECK(says(e, "without CAP_SYS_PTRACE"));
    CHECK(says(e, "docker run --cap-add=SYS_PTRACE"));
    CHECK(says(e, "on the host"));
  }
  SECTION("same user, no capability, no Yama: most likely a non-dumpable process, which root may trace") {
    PtraceFacts facts = sameUserNoCapability();
    Error e = explainPtraceDenied(facts, EPERM, "stack");
    CHECK(says(e, "non-dumpable"));
    CHECK(says(e, "Operation not permitted"));
    CHECK(says(e, "sudo cppops stack 4242"));
  }
  SECTION("refused although cppops has CAP_SYS_PTRACE: no advice to become root") {
    PtraceFacts facts = sameUserNoCapability();
    facts.own_euid = 0;
    facts.own_cap_sys_ptrace = true;
    Error e = explainPtraceDenied(facts, EPERM, "heap");
    CHECK(says(e, "cppops has CAP_SYS_PTRACE"));
    CHECK(says(e, "security module"));
    CHECK(says(e, "journalctl -k"));
    CHECK(says(e, "LD_PRELOAD=libcppops_agent.so"));
    CHECK_FALSE(says(e, "sudo"));
    CHECK_FALSE(says(e, "as root"));
  }
}
