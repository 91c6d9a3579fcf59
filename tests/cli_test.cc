// The `itinera` command as a newcomer and an operator meet it, run as a
// process against a real PostgreSQL: bulk operations that refuse to act on
// everything by accident and ask first on a terminal, and the messages and
// exit codes of the common mistakes (issue 16). No workers run: started
// workflows stay Running, which is all these tests need.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "store/sql_admin.h"
#include "trip_reminder/trip_reminder.h"
#include "worker/worker.h"
#include "support/shell.h"
#include "module_table.h"
#include "support/test_database.h"

namespace itinera {
namespace {

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestDsn("cli_test");
  return dsn;
}

using CliResult = ::itinera::testing::ShellResult;

// Runs a shell command line (with the binary as $ITINERA) and collects it.
CliResult Sh(const std::string& command_line) {
  return ::itinera::testing::RunShell(fmt::format("ITINERA='{}'; {}", ITINERA_BINARY, command_line));
}

// `itinera ARGS --db DSN`, stdin not a terminal.
CliResult Itinera(const std::string& args) {
  return Sh(fmt::format("\"$ITINERA\" {} --db '{}' </dev/null", args, Dsn()));
}

// `itinera ARGS --db DSN` on a terminal (a pseudo-terminal from script(1)),
// typing `typed` into it.
CliResult OnTerminal(const std::string& args, const std::string& typed) {
  return Sh(fmt::format("printf '{}' | script -qec \"\\\"$ITINERA\\\" {} --db '{}'\" /dev/null", typed, args, Dsn()));
}

std::int64_t Rows(const std::string& sql) {
  auto n = store::QueryInt(Dsn(), sql);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return n.ok() ? *n : -1;
}

std::int64_t Running() { return Rows("SELECT count(*) FROM executions WHERE status = 1"); }

bool Has(const CliResult& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    for (const char* id : {"trip-a", "trip-b", "other-c"}) {
      CliResult r = Itinera(fmt::format(
          "workflow start TripReminder --id {} --input '{{\"traveler\":\"ada\",\"destination\":\"Lisbon\"}}'", id));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    ASSERT_EQ(Running(), 3);
  }
};

TEST_F(CliTest, BulkOperationsWithoutAFilterAreRefusedAndChangeNothing) {
  for (const std::string verb : {"terminate", "cancel", "retry", "reset --to last-good"}) {
    CliResult r = Itinera("workflow " + verb + " --all");
    EXPECT_EQ(r.exit_code, 2) << verb << ": " << r.output;
    EXPECT_TRUE(Has(r, "--all: give at least one filter")) << r.output;
    EXPECT_TRUE(Has(r, "--all-runs")) << r.output;
  }
  CliResult r = Itinera("workflow signal --all --name approval");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "--all: give at least one filter")) << r.output;
  EXPECT_EQ(Running(), 3);
  EXPECT_EQ(Rows("SELECT count(*) FROM history_events"), 6);  // started and a workflow task, each

  // Every run, said on purpose; with a filter it is a contradiction.
  r = Itinera("workflow terminate --all-runs --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r, "terminate (dry run): 3 matched")) << r.output;
  r = Itinera("workflow terminate --all-runs --status Running");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "--all-runs:")) << r.output;
  EXPECT_EQ(Running(), 3);
  r = Itinera("workflow terminate --all-runs --rate 1000");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Running(), 0);
}

TEST_F(CliTest, OnATerminalABulkOperationSaysHowManyRunsAndAsksFirst) {
  CliResult r = OnTerminal("workflow terminate --all --id-prefix trip-", "n\\n");
  EXPECT_TRUE(Has(r, "terminate: 2 runs match. Go ahead? [y/N]")) << r.output;
  EXPECT_TRUE(Has(r, "nothing done")) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(Running(), 3);

  r = OnTerminal("workflow terminate --all --id-prefix trip- --rate 1000", "y\\n");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r, "terminate: 2 matched, 2 terminated")) << r.output;
  EXPECT_EQ(Running(), 1);

  // --yes: no question, on a terminal too.
  r = OnTerminal("workflow terminate --all --id-prefix other- --yes", "");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(Has(r, "Go ahead?")) << r.output;
  EXPECT_EQ(Running(), 0);
}

TEST_F(CliTest, CommonMistakesGetMessagesThatSayWhatToTypeInstead) {
  CliResult r = Itinera("workflow lst");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Has(r, "unknown subcommand lst of `itinera workflow` (one of: start, list,")) << r.output;

  r = Itinera("workflow describe --id trip-a");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Has(r, "--id: describe takes the workflow id without a flag: `itinera workflow describe ID`"))
      << r.output;

  // Global flags before the subcommand.
  r = Sh(fmt::format("\"$ITINERA\" --db '{}' workflow list --id-prefix trip-", Dsn()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r, "trip-a")) << r.output;

  // `signal --all --type T`: --type is the input's message type.
  r = Itinera("workflow signal --all --type TripReminder --name approval");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "select runs by workflow type with --workflow-type")) << r.output;

  // A JSON syntax error says where, and nothing is stored.
  r = Itinera("workflow start TripReminder --id trip-z --input '{\"traveler\": \"ada\",\n \"destination\" \"Rome\"}'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "--input: parse error at line 2, column")) << r.output;
  EXPECT_TRUE(Has(r, "expected ':'")) << r.output;
  r = Itinera("workflow signal trip-a --name approval --type itinera.example.v1.Approval --input '{approved: true}'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "--input: parse error at line 1, column 2")) << r.output;
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'trip-z'"), 0);
  EXPECT_EQ(Rows("SELECT count(*) FROM history_events WHERE workflow_id = 'trip-a'"), 2);

  // A malformed DSN is an invalid argument (exit 2) naming where it came from.
  r = Sh("\"$ITINERA\" workflow list --db 'nonsense'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "--db: not a connection string: missing \"=\" after \"nonsense\"")) << r.output;
  r = Sh("ITINERA_DB='host=x dbname' \"$ITINERA\" workflow list");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "ITINERA_DB: not a connection string")) << r.output;
}

// `workflow query` answers from history, with no worker running, as JSON.
TEST_F(CliTest, QueryAnswersFromHistoryAsJson) {
  // Before any workflow task ran, the code has registered no handler yet.
  CliResult r = Itinera("workflow query trip-a status");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(Has(r, "has no query handler \"status\"; known queries: none")) << r.output;

  {
    // A worker runs the first steps (each run reserves, then waits for its
    // approval), and stops: queries need none.
    Registry registry;
    ASSERT_TRUE(modules::RegisterModule(registry, "trip_reminder").ok());
    Worker worker(registry, WorkerOptions{.dsn = Dsn()});
    ASSERT_TRUE(worker.Start().ok());
    ASSERT_TRUE(worker.WaitIdle().ok());
    worker.Stop();
  }
  const std::int64_t events = Rows("SELECT count(*) FROM history_events WHERE workflow_id = 'trip-a'");
  r = Itinera("workflow query trip-a status");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.output;
  EXPECT_EQ(j["workflow_id"], "trip-a");
  EXPECT_EQ(j["query"], "status");
  EXPECT_EQ(j["result"], "awaiting approval");
  EXPECT_TRUE(j["run_id"].is_string());

  r = Itinera("workflow query trip-a stauts");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(Has(r, "error: workflow TripReminder has no query handler \"stauts\"; known queries: status"))
      << r.output;
  r = Itinera("workflow query no-such-trip status");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  r = Itinera("workflow query trip-a status --input '{oops'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "--input: parse error")) << r.output;
  // Nothing was written by any of it.
  EXPECT_EQ(Rows("SELECT count(*) FROM history_events WHERE workflow_id = 'trip-a'"), events);
}

TEST_F(CliTest, ABookingIsCheckedAtStartAndNotStartedTwice) {
  const std::string input =
      R"({"booking_id": "bk-1", "tenant": "dev", "flight_id": "IT141-20270301", "passengers": 1,
          "hotel_id": "HTL-ROM-1", "check_in": "2027-03-01", "check_out": "2027-03-04", "rooms": 1,
          "card_token": "tok_visa", "quote": {"fare_cents": 20053, "hotel_total_cents": 59157}})";
  // A bad input is refused before any run exists, naming the field.
  CliResult r = Itinera(R"(workflow start BookTrip --id book/bk-1 --input '{"booking_id": "bk-1"}')");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(Has(r, "error: input.flight_id: required")) << r.output;
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'book/bk-1'"), 0);

  r = Itinera("workflow start BookTrip --id book/bk-1 --input '" + input + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Itinera("workflow terminate book/bk-1 --reason test");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Once its run has ended, the booking's workflow id is not started again.
  r = Itinera("workflow start BookTrip --id book/bk-1 --input '" + input + "'");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_TRUE(Has(r, "workflow \"book/bk-1\" already ran (Terminated, run ")) << r.output;
  EXPECT_TRUE(Has(r, "BookTrip runs once per workflow id")) << r.output;
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'book/bk-1'"), 1);
  // Other workflows may run again under a closed id.
  r = Itinera("workflow terminate trip-a");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Itinera(R"(workflow start TripReminder --id trip-a --input '{"traveler":"ada","destination":"Lisbon"}')");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(CliHelpTest, HelpShowsTheDefaultsAndWhereTheDatabaseComesFrom) {
  CliResult dev = Sh("\"$ITINERA\" dev --help");
  EXPECT_TRUE(Has(dev, "--data-dir TEXT=.itinera")) << dev.output;
  EXPECT_TRUE(Has(dev, "--listen TEXT=127.0.0.1:7233")) << dev.output;
  EXPECT_TRUE(Has(dev, "--supplier-listen TEXT=127.0.0.1:7301")) << dev.output;
  EXPECT_TRUE(Has(dev, "--task-queue TEXT=default")) << dev.output;
  CliResult serve = Sh("\"$ITINERA\" serve --help");
  EXPECT_TRUE(Has(serve, "--activity-threads INT=8")) << serve.output;
  EXPECT_TRUE(Has(serve, "./.itinera/dsn")) << serve.output;
  CliResult list = Sh("\"$ITINERA\" workflow list --help");
  EXPECT_TRUE(Has(list, "ITINERA_DB, else ./.itinera/dsn")) << list.output;
}

// A free loopback port, held open by the returned socket.
int HoldPort(int* fd) {
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (bind(*fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(*fd, 1) != 0) return -1;
  socklen_t len = sizeof a;
  getsockname(*fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST(CliDevTest, ATakenPortNamesItsFlagAndDevDoesNotSayItIsUp) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("itinera-cli-dev-{}", getpid());
  std::filesystem::create_directories(dir);
  // The private PostgreSQL runs as an unprivileged user when we are root.
  std::filesystem::permissions(dir, std::filesystem::perms::all & ~std::filesystem::perms::group_write &
                                        ~std::filesystem::perms::others_write);
  int fd = -1;
  int taken = HoldPort(&fd);
  ASSERT_GT(taken, 0);
  CliResult supplier = Sh(fmt::format("\"$ITINERA\" dev --data-dir '{}' --supplier-listen 127.0.0.1:{} --listen 127.0.0.1:0",
                                      (dir / "a").string(), taken));
  EXPECT_EQ(supplier.exit_code, 1) << supplier.output;
  EXPECT_TRUE(Has(supplier, fmt::format("--supplier-listen: cannot listen on 127.0.0.1:{}", taken))) << supplier.output;
  EXPECT_FALSE(Has(supplier, "is up")) << supplier.output;
  CliResult admin = Sh(fmt::format("\"$ITINERA\" dev --data-dir '{}' --supplier-listen 127.0.0.1:0 --listen 127.0.0.1:{}",
                                   (dir / "b").string(), taken));
  EXPECT_EQ(admin.exit_code, 1) << admin.output;
  EXPECT_TRUE(Has(admin, fmt::format("error: --listen: cannot listen on 127.0.0.1:{}", taken))) << admin.output;
  EXPECT_FALSE(Has(admin, "is up")) << admin.output;
  close(fd);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace itinera
