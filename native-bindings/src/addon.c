/* dwcp_native: the one N-API module; each source file registers its part. */
#include "beneath.h"
#include "sockopt.h"

/* Module init: export every function under its JavaScript name. */
static napi_value init(napi_env env, napi_value exports) {
  sockopt_register(env, exports);
  beneath_register(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
