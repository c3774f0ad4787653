/* TCP socket options Node's net module lacks (sockopt.c). */
#ifndef DWCP_SOCKOPT_H
#define DWCP_SOCKOPT_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Add tcpInfo, setCongestion, getCongestion, availableCongestion,
   setSendBuffer, setRecvBuffer and setNotSentLowat to exports. */
void sockopt_register(napi_env env, napi_value exports);

#endif
