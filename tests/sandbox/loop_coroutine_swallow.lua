-- expect: time budget
-- the loop runs in a coroutine whose error the caller ignores, forever
while true do
  local co = coroutine.create(function() while true do end end)
  coroutine.resume(co)
end
