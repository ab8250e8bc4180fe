// Helpers shared by the engine's CPU tests (test_engine_config, test_safetensors, test_sharding): the message of
// an expected nvrar::Error, a substring check that prints the message, and a per-test temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "nvrar/types.h"

namespace nvrar::engine::test_support {

// The message of the nvrar::Error `f` throws; a test failure (and "") if it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an nvrar::Error";
  return "";
}

#define EXPECT_HAS(message, needle) EXPECT_NE((message).find(needle), std::string::npos) << (message)

// A fresh directory named after the running test (and the process, so parallel ctest runs do not collide),
// removed with everything in it at the end of the test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("nvrar_" + std::string(test->test_suite_name()) + "_" + test->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

}  // namespace nvrar::engine::test_support
