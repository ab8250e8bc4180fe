// NVRAR_LLM_GEMM's parser (src/config/gemm_pin.h): both forms, what each shape gets, and a refusal for every kind of
// bad item, naming the item.
#include <gtest/gtest.h>

#include <string>

#include "config/gemm_pin.h"
#include "nvrar/types.h"

namespace nvrar::config {
namespace {

std::string refusal(const std::string& text) {
  try {
    parse_gemm_pin(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GemmPin, EmptyPinsNothing) {
  const GemmPin pin = parse_gemm_pin("");
  EXPECT_EQ(pin.kernel_for({1, 4096, 4096}), kGemmTimed);
  EXPECT_TRUE(pin.by_shape.empty());
}

TEST(GemmPin, OneNamePinsEveryShape) {
  EXPECT_EQ(parse_gemm_pin("cublaslt").kernel_for({8, 6144, 4096}), kGemmCublasLt);
  for (int v = 0; v < kGemmPinVariants; ++v) {
    const GemmPin pin = parse_gemm_pin("skinny" + std::to_string(v));
    EXPECT_EQ(pin.kernel_for({1, 4096, 4096}), v);
    EXPECT_EQ(pin.kernel_for({3, 128256, 4096}), v);
  }
}

TEST(GemmPin, ListPinsOnlyItsShapes) {
  const GemmPin pin = parse_gemm_pin("1x4096x4096=skinny0,8x6144x4096=cublaslt,1x28672x4096=skinny3");
  EXPECT_EQ(pin.kernel_for({1, 4096, 4096}), 0);
  EXPECT_EQ(pin.kernel_for({8, 6144, 4096}), kGemmCublasLt);
  EXPECT_EQ(pin.kernel_for({1, 28672, 4096}), 3);
  EXPECT_EQ(pin.kernel_for({1, 4096, 14336}), kGemmTimed);  // not listed
  EXPECT_EQ(pin.kernel_for({4096, 1, 4096}), kGemmTimed);   // m and n are not interchangeable
  EXPECT_EQ(pin.by_shape.size(), 3u);
}

TEST(GemmPin, NamesRoundTrip) {
  EXPECT_EQ(gemm_kernel_name(kGemmCublasLt), "cublaslt");
  for (int v = 0; v < kGemmPinVariants; ++v)
    EXPECT_EQ(parse_gemm_pin("2x8x16=" + gemm_kernel_name(v)).kernel_for({2, 8, 16}), v);
}

TEST(GemmPin, RefusesBadItemsNamingThem) {
  const struct {
    const char* text;
    const char* item_and_why;
  } cases[] = {
      {"skinny4", "='skinny4' is not a kernel name"},
      {"Skinny0", "='Skinny0' is not a kernel name"},
      {"1x4096x4096=skinny0,8x4096", "has an item '8x4096' that is not of the form MxNxK=kernel"},
      {"1x4096=skinny0", "has an item '1x4096=skinny0' that does not start with a shape MxNxK"},
      {"1x4096x4096x2=skinny0", "does not start with a shape MxNxK"},
      {"0x4096x4096=skinny0", "does not start with a shape MxNxK"},
      {"1x-4096x4096=skinny0", "does not start with a shape MxNxK"},
      {"1x+4096x4096=skinny0", "does not start with a shape MxNxK"},
      {"1x4096x99999999999999999999=skinny0", "does not start with a shape MxNxK"},
      {"1x4096x4096=", "item '1x4096x4096=' that does not end in a kernel name"},
      {"1x4096x4096=skinny0 ", "does not end in a kernel name"},
      {"1x4096x4096=skinny0,", "has an empty item (a stray comma?)"},
      {"1x4096x4096=skinny0,,2x8x8=cublaslt", "has an empty item"},
      {"1x4096x4096=skinny0,1x4096x4096=skinny1", "item '1x4096x4096=skinny1' that names a shape a second time"},
  };
  for (const auto& c : cases) {
    const std::string message = refusal(c.text);
    EXPECT_NE(message.find(std::string("NVRAR_LLM_GEMM='") + c.text + "'"), std::string::npos) << message;
    EXPECT_NE(message.find(c.item_and_why), std::string::npos) << c.text << ": " << message;
    EXPECT_EQ(gemm_pin_problem(c.text).empty(), false) << c.text;
  }
  EXPECT_EQ(gemm_pin_problem("1x4096x4096=skinny0"), "");
}

}  // namespace
}  // namespace nvrar::config
