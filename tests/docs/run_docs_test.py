#!/usr/bin/env python3
"""The docs runner's own rules, without a dev: how blocks and directives are
read, what is normalized, and how `...` elides (tests/docs/run_docs.py)."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_docs  # noqa: E402


def parse_text(text):
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write(text)
    try:
        return run_docs.parse(f.name)
    finally:
        os.unlink(f.name)


class ParseTest(unittest.TestCase):
    def test_commands_continue_over_backslashes_and_open_quotes(self):
        steps = parse_text("```\n$ itinera workflow start T \\\n    --id a\nout 1\n"
                           "$ itinera workflow start T --input '{\n  \"a\": 1}'\nout 2\n```\n")
        commands = run_docs.split_commands(steps[0][1])
        self.assertEqual([c for c, _ in commands],
                         ["itinera workflow start T \\\n    --id a", "itinera workflow start T --input '{\n  \"a\": 1}'"])
        self.assertEqual([o for _, o in commands], [["out 1"], ["out 2"]])

    def test_directives_attach_to_the_next_block_or_stand_alone(self):
        steps = parse_text("<!-- docs-test: wait-until itinera workflow describe a\n  | grep -q x -->\n"
                           "<!-- docs-test: skip a reason -->\n```\nscripts/run\n```\n"
                           "```cpp\nint main() {}\n```\n")
        self.assertEqual(steps[0][:2], ("directive", "wait-until"))
        self.assertEqual(steps[0][2], "itinera workflow describe a\n  | grep -q x")
        self.assertEqual(steps[1][1].directive[:2], ("skip", "a reason"))
        self.assertEqual(len(steps), 2)  # the cpp block is code, not commands

    def test_restart_dev_stands_alone_with_optional_flags(self):
        steps = parse_text("<!-- docs-test: restart-dev -->\n<!-- docs-test: restart-dev --token t-12345678:acme -->\n"
                           "```\n$ itinera workflow list\n```\n")
        self.assertEqual([s[:3] for s in steps[:2]],
                         [("directive", "restart-dev", ""), ("directive", "restart-dev", "--token t-12345678:acme")])
        self.assertIsNone(steps[2][1].directive)  # it does not attach to the block after it

    def test_mistakes_in_a_doc_are_errors(self):
        for text in ("<!-- docs-test: sleep 5 -->\n", "<!-- docs-test: skip x -->\ntext only\n",
                     "```\n$ unclosed\n", "<!-- docs-test: run -->\n"):
            with self.assertRaises(run_docs.DocError, msg=text):
                parse_text(text)


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.n = run_docs.Normalizer()

    def check(self, shown, printed):
        return run_docs.matches([self.n(l) for l in shown], [self.n(l) for l in printed])

    def test_ids_times_identities_and_sizes_are_ignored(self):
        self.assertTrue(self.check(
            ['{"created":true,"run_id":"b501f076-2623-44f1-bfab-6dba23b7d7e7","workflow_id":"trip-1"}',
             '    3  14:44:36.476Z  WorkflowTaskStarted   scheduled_event_id=2 identity=vm:3104:1',
             '  "history_bytes": 703,', '  "fires": "2026-11-27T14:54:36.547Z",',
             'result={"reservation_id":"R-b501f076-5"}'],
            ['{"created":true,"run_id":"0c3d5e36-4f0b-4d55-a4b1-0d8b3a1f6c2e","workflow_id":"trip-1"}',
             '    3  09:01:02.003Z  WorkflowTaskStarted scheduled_event_id=2 identity=host-7:99:1',
             '  "history_bytes": 1703,', '  "fires": "2026-12-02T09:11:02.1Z",',
             'result={"reservation_id":"R-0c3d5e36-5"}']))
        # A shown history may leave the time column out.
        self.assertTrue(self.check(['   11  TimerStarted  timer_id=1'], ['   11  14:44:36.547Z  TimerStarted timer_id=1']))

    def test_everything_else_must_match(self):
        self.assertFalse(self.check(['{"created":true}'], ['{"created":false}']))
        self.assertFalse(self.check(['cancel requested'], ['cancel requested', 'one line more']))
        self.assertFalse(self.check(['a', 'b'], ['a']))
        self.assertFalse(self.check(['status=Completed'], ['status=Failed']))

    def test_elisions(self):
        self.assertTrue(self.check(['first', '...', 'last'], ['first', 'x', 'y', 'last']))
        self.assertTrue(self.check(['first', '   ...', 'last'], ['first', 'last']))
        self.assertTrue(self.check(['input={...} done'], ['input={"a":1} done']))
        self.assertFalse(self.check(['input={...} done'], ['input={"a":1} failed']))
        self.assertFalse(self.check(['first', '...', 'last'], ['first', 'x']))


if __name__ == "__main__":
    unittest.main()
