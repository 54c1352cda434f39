/*
 * Test-only stand-in for bcryptprimitives.dll, which Wine 8 does not have.
 *
 * Rust's standard library (1.78+) fills its random buffers on Windows by
 * calling ProcessPrng from bcryptprimitives.dll. Wine 8 ships no such DLL, so
 * any Rust EXE or DLL fails to load under it (STATUS_DLL_NOT_FOUND, exit 53).
 * This shim forwards ProcessPrng to RtlGenRandom (advapi32's
 * SystemFunction036), which Wine implements.
 *
 * ci/win64.sh builds it and puts it beside the test EXE, for running tests
 * under Wine only. It is never part of an SDK archive nor shipped: real
 * Windows has the genuine DLL.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length: feed it in bounded chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000u ? 0x10000000u : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
