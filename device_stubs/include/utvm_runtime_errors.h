/* utvm-host device runtime: what its own errors say. The runtime stores only a code in
 * utvm_last_error (UTVM_RUNTIME_ERROR, ESC, and the digit, utvm_runtime.h); the session
 * (utvm_host/session.py reads these lines) and the firmware (utvm_fw_put_error) print the text,
 * for 4 followed by the address in utvm_ws_bad as 2 * sizeof(uintptr_t) hex digits. */
#ifndef UTVM_RUNTIME_ERRORS_H_
#define UTVM_RUNTIME_ERRORS_H_
#define UTVM_RUNTIME_ERROR_1 "TVMBackendAllocWorkspace: request larger than the workspace region"
#define UTVM_RUNTIME_ERROR_2 "TVMBackendAllocWorkspace: out of workspace memory"
#define UTVM_RUNTIME_ERROR_3 "TVMBackendFreeWorkspace: pointer was not allocated from the workspace"
#define UTVM_RUNTIME_ERROR_4 "the workspace is corrupted: a kernel wrote past its buffer over the block header at 0x"
#endif /* UTVM_RUNTIME_ERRORS_H_ */
