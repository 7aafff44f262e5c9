-- expect: ok
-- ordinary work passes every cap
local s = ("  hello world  "):rep(50)
local trimmed = s:match("^%s*(.-)%s*$")
assert(#trimmed > 0)
assert(("alice@example.com"):match("^[%w._%-]+@[%w.-]+%.%a+$"))
local parts = {}
for w in ("a,b,c,d"):gmatch("[^,]+") do parts[#parts + 1] = w end
assert(table.concat(parts, "-") == "a-b-c-d")
table.sort(parts, function(a, b) return a > b end)
assert(parts[1] == "d")
assert(kith.json.decode(kith.json.encode({x = 1, y = {1, 2}})).y[2] == 2)
assert(kith.api_level >= 1)
assert(math.type(kith.time.now()) == "integer")
kith.on("contacts.before_create", {priority = 5, fields = {"stage"}}, function(ev) end)
local co = coroutine.wrap(function() coroutine.yield(1) return 2 end)
assert(co() == 1 and co() == 2)
-- kith.json.decode applies the API's input limits
local v, e = kith.json.decode(string.rep("[", 100) .. string.rep("]", 100))
assert(v == nil and e.code == "limit", e and e.code)
v, e = kith.json.decode('{"a":1,"a":2}')
assert(v == nil and e.code == "invalid" and e.message:find("line"), e and e.message)
