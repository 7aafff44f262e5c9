---@meta
-- sdk/lua/kith_test.lua: LuaCATS annotations (LuaLS) of the globals a test
-- file run by `kith test` has besides the sandbox and `kith` (kith.lua):
-- describe, it, before_each, after_each and expect. Never run; put it on the
-- language server's path next to kith.lua.
--
--   kith test --data DIR [--workspace NAME] FILE...
--
-- The tests run against a throw-away copy of the workspace with its current
-- scripts loaded; the real workspace is never written. A file's top level
-- runs once and declares: describe runs its body at once, it records a test.
-- Then each test runs in order, under its own budget (1 s of running time,
-- waits for the store not counted, and the scripts' memory budget), so one
-- that fails, raises or loops fails alone. Tests of a file share its locals
-- and the copy (a record one test creates is there for the next), in order.
--
-- Test level: kith.entity.get/query/create/update/delete and kith.emit work
-- anywhere in a test file. Each write is its own committed write on the
-- copy: the scripts' before-hooks run (a veto returns nil, {code = "vetoed",
-- message = ...} as in a handler), and the call returns once the after-hooks
-- have run (at most 5 s), so their effects can be checked on the next line.
-- kith.log.* prints "# message" lines into the report. Timers (kith.after,
-- kith.at, kith.every, kith.cancel) and kith.on work only in scripts.
--
-- Report: "ok N - outer > inner > name", or "not ok N - ..." followed by
-- "  # file:line: message"; then "P passed, F failed". Exit code 0 when all
-- passed, 1 when one failed, 2 when a file cannot be read or compiled, the
-- workspace does not exist or the usage is wrong (nothing runs then).

---A group of tests: name prefixes theirs ("outer > inner > test"). fn runs
---at once, declaring tests, nested groups and before_each/after_each.
---@param name string
---@param fn fun()
function describe(name, fn) end

---Declares a test. It runs after the file's top level, in declaration
---order, under its own budget; an error or a failed expectation fails it
---alone, reported with the file and line.
---@param name string
---@param fn fun()
function it(name, fn) end

---Runs fn before each test of the enclosing describe (or of the file, at
---the top level), outer ones first. An error in it fails the test.
---@param fn fun()
function before_each(fn) end

---Runs fn after each test of the enclosing describe (or of the file), inner
---ones first, also after a failed test (not after a budget ran out).
---@param fn fun()
function after_each(fn) end

---An expectation about value. A matcher that does not hold raises
---"file:line: expected ..., got ..." at the line that called it.
---@class kith.Expectation
---@field never kith.Expectation the same expectation, negated
---@field not_ kith.Expectation the same as never
local Expectation = {}

---value == expected (Lua equality: tables by identity).
---@param expected any
function Expectation.to_be(expected) end

---Deep equality: tables with the same keys and deep-equal values.
---@param expected any
function Expectation.to_equal(expected) end

---value is nil.
function Expectation.to_be_nil() end

---value is neither nil nor false.
function Expectation.to_be_truthy() end

---value is nil or false.
function Expectation.to_be_falsy() end

---A string contains x (plain text), or an array holds an element deep-equal
---to x.
---@param x any
function Expectation.to_contain(x) end

---A string matches the Lua pattern (string.find, with its cost cap).
---@param pattern string
function Expectation.to_match(pattern) end

---value is a function that raises when called with no arguments; with
---text, its error message contains text (plain).
---@param text? string
function Expectation.to_fail(text) end

---The same as to_fail.
---@param text? string
function Expectation.to_error(text) end

---value > x.
---@param x number|string
function Expectation.to_be_greater_than(x) end

---value < x.
---@param x number|string
function Expectation.to_be_less_than(x) end

---An expectation about value: expect(v).to_be(3), expect(f).never.to_fail().
---Matchers are called with a dot (a colon works too).
---@param value any
---@return kith.Expectation
function expect(value) end
