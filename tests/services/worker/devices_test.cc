// Tests for the worker's --devices parsing: CPU slots, every GPU or listed GPUs, and the errors
// (each names the value given and the accepted forms); CudaDeviceCount in a CUDA-less build; and
// --rendezvous-ports and --rendezvous-host.
#include "services/worker/devices.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kForms[] = "use cpu:N (N CPU slots), cuda (every GPU) or cuda:0,1 (those GPUs)";

std::vector<std::string> Ids(const std::vector<sgt::v1::Device>& devices) {
  std::vector<std::string> ids;
  for (const sgt::v1::Device& d : devices) ids.push_back(d.id());
  return ids;
}

std::vector<std::string> Kinds(const std::vector<sgt::v1::Device>& devices) {
  std::vector<std::string> kinds;
  for (const sgt::v1::Device& d : devices) kinds.push_back(d.kind());
  return kinds;
}

// Expects `spec` refused with kInvalidArgument, naming the value, `why` and the accepted forms.
void ExpectBad(const std::string& spec, int cuda_count, const std::string& why,
               const std::string& cuda_why = "") {
  SCOPED_TRACE("--devices '" + spec + "'");
  absl::StatusOr<std::vector<sgt::v1::Device>> d = ParseDevices(spec, cuda_count, cuda_why);
  ASSERT_FALSE(d.ok()) << "accepted as " << d->size() << " device(s)";
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(d.status().message());
  EXPECT_THAT(msg, HasSubstr("--devices " + spec + ": "));
  EXPECT_THAT(msg, HasSubstr(why));
  EXPECT_THAT(msg, HasSubstr(kForms));
}

TEST(ParseDevicesTest, OneCpuSlot) {
  absl::StatusOr<std::vector<sgt::v1::Device>> d = ParseDevices("cpu:1", -1, "no CUDA");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(Ids(*d), ElementsAre("cpu:0"));
  EXPECT_THAT(Kinds(*d), ElementsAre("cpu"));
}

TEST(ParseDevicesTest, FourCpuSlots) {
  absl::StatusOr<std::vector<sgt::v1::Device>> d = ParseDevices("cpu:4", 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(Ids(*d), ElementsAre("cpu:0", "cpu:1", "cpu:2", "cpu:3"));
  EXPECT_THAT(Kinds(*d), ElementsAre("cpu", "cpu", "cpu", "cpu"));
}

TEST(ParseDevicesTest, CpuSlotBounds) {
  absl::StatusOr<std::vector<sgt::v1::Device>> d = ParseDevices("cpu:4096", -1);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size(), 4096u);
  EXPECT_EQ(d->back().id(), "cpu:4095");
  ExpectBad("cpu:4097", -1, "cpu needs a slot count from 1 to 4096");
}

TEST(ParseDevicesTest, BadCpuForms) {
  for (const char* spec : {"cpu", "cpu:", "cpu:0", "cpu:-1", "cpu:x", "cpu:2x", "cpu:1.5",
                           "cpu:99999999999999999999"}) {
    ExpectBad(spec, 2, "cpu needs a slot count from 1 to 4096");
  }
}

TEST(ParseDevicesTest, UnknownKinds) {
  for (const char* spec : {"", "gpu:1", "gpu", "CPU:1", "Cuda", "tpu:0", ":1", "cudas"}) {
    ExpectBad(spec, 2, "unknown device kind");
  }
}

TEST(ParseDevicesTest, CudaWithoutCudaCarriesTheReason) {
  const std::string why = "this sgt-worker was built without CUDA (configure with X)";
  ExpectBad("cuda", -1, why, why);
  ExpectBad("cuda:0", -1, why, why);
  ExpectBad("cuda:0,1", -1, why, why);
  ExpectBad("cuda", -1, "CUDA is not available");  // no reason given
}

TEST(ParseDevicesTest, CudaTakesEveryGpu) {
  absl::StatusOr<std::vector<sgt::v1::Device>> d = ParseDevices("cuda", 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(Ids(*d), ElementsAre("cuda:0", "cuda:1"));
  EXPECT_THAT(Kinds(*d), ElementsAre("cuda", "cuda"));
}

TEST(ParseDevicesTest, CudaWithNoGpuIsRefused) {
  ExpectBad("cuda", 0, "the CUDA runtime sees no GPU");
}

TEST(ParseDevicesTest, ListedGpus) {
  absl::StatusOr<std::vector<sgt::v1::Device>> one = ParseDevices("cuda:1", 2);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(Ids(*one), ElementsAre("cuda:1"));
  EXPECT_THAT(Kinds(*one), ElementsAre("cuda"));
  // In the order given.
  absl::StatusOr<std::vector<sgt::v1::Device>> two = ParseDevices("cuda:3,0", 4);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_THAT(Ids(*two), ElementsAre("cuda:3", "cuda:0"));
}

TEST(ParseDevicesTest, GpuOutOfRangeNamesTheRange) {
  ExpectBad("cuda:2", 2, "GPU 2 does not exist; the CUDA runtime sees 2 (0 to 1)");
  ExpectBad("cuda:0,5", 2, "GPU 5 does not exist");
  ExpectBad("cuda:0", 0, "GPU 0 does not exist");
}

TEST(ParseDevicesTest, GpuListedTwice) {
  ExpectBad("cuda:0,0", 2, "GPU 0 is listed twice");
  ExpectBad("cuda:1,0,1", 2, "GPU 1 is listed twice");
}

TEST(ParseDevicesTest, BadGpuIndices) {
  ExpectBad("cuda:", 2, "'' is not a GPU index");
  ExpectBad("cuda:-1", 2, "'-1' is not a GPU index");
  ExpectBad("cuda:x", 2, "'x' is not a GPU index");
  ExpectBad("cuda:0,", 2, "'' is not a GPU index");
  ExpectBad("cuda:0,,1", 2, "'' is not a GPU index");
}

TEST(CudaDeviceCountTest, AnswersWithACountOrAReason) {
  std::string why;
  const int n = CudaDeviceCount(&why);
#ifdef SGT_WORKER_CUDA
  // Built with CUDA: a count, or the runtime's reason (no driver, no GPU).
  if (n < 0) {
    EXPECT_FALSE(why.empty());
  }
#else
  EXPECT_EQ(n, -1);
  EXPECT_THAT(why, HasSubstr("without CUDA"));
  EXPECT_THAT(why, HasSubstr("SGT_WORKER_CUDA"));
#endif
  // Its answer feeds ParseDevices as the worker's main does.
  if (n < 0) {
    ExpectBad("cuda", -1, why, why);
  }
}

TEST(RendezvousPortsTest, BaseToEndIncluded) {
  RendezvousOffer o;
  EXPECT_EQ(o.port_base, 29500);  // the defaults: 29500-29599
  EXPECT_EQ(o.port_count, 100);
  ASSERT_TRUE(ParseRendezvousPorts("30000-30009", &o).ok());
  EXPECT_EQ(o.port_base, 30000);
  EXPECT_EQ(o.port_count, 10);
  ASSERT_TRUE(ParseRendezvousPorts("1-65535", &o).ok());
  EXPECT_EQ(o.port_base, 1);
  EXPECT_EQ(o.port_count, 65535);
  ASSERT_TRUE(ParseRendezvousPorts("29500-29500", &o).ok());
  EXPECT_EQ(o.port_count, 1);
}

TEST(RendezvousPortsTest, BadRangesAreRefusedNamingTheValue) {
  struct Case {
    std::string spec, why;
  };
  const Case cases[] = {
      {"", "not two port numbers joined by '-'"},
      {"29500", "not two port numbers joined by '-'"},
      {"29500-", "not two port numbers joined by '-'"},
      {"a-b", "not two port numbers joined by '-'"},
      {"1-2-3", "not two port numbers joined by '-'"},
      {"-5-10", "not two port numbers joined by '-'"},
      {"0-10", "ports are 1 to 65535"},
      {"65000-65536", "ports are 1 to 65535"},
      {"29600-29500", "END 29500 is below BASE 29600"},
  };
  for (const Case& c : cases) {
    RendezvousOffer o;
    const absl::Status s = ParseRendezvousPorts(c.spec, &o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.spec;
    EXPECT_THAT(std::string(s.message()), HasSubstr("--rendezvous-ports " + c.spec + ": " + c.why +
                                                    "; use BASE-END, e.g. 29500-29599"));
    EXPECT_EQ(o.port_base, 29500) << "changed by a refused value";
  }
}

TEST(RendezvousHostTest, NamesAndAddressesPass) {
  for (const std::string h : {"w1", "w1.cluster.lan", "10.0.0.5", "fe80::1"}) {
    EXPECT_TRUE(CheckRendezvousHost(h).ok()) << h;
  }
  for (const std::string& h : std::vector<std::string>{"", "w 1", "w1\n", std::string(254, 'a')}) {
    const absl::Status s = CheckRendezvousHost(h);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << h;
    EXPECT_THAT(std::string(s.message()), HasSubstr("--rendezvous-host '" + h + "'"));
  }
}

}  // namespace
}  // namespace sgt::worker
