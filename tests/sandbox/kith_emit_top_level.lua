-- expect: only inside a handler
kith.emit("lead.hot", {})
