-- expect: proxies hide their tables
-- pairs over a frozen library lists its functions but never the table behind it
local n = 0
for k, v in pairs(string) do
  n = n + 1
  assert(type(v) == "function", k)
end
assert(n > 10)
assert(getmetatable(string) == false)
assert(rawget(string, "rep") == nil)
error("proxies hide their tables")
