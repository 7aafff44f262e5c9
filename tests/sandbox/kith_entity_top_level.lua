-- expect: only inside a handler
return kith.entity.get("contacts", "01M82BDX53XCJES97SD1884V17")
