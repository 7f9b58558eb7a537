// capture.h: a thin C API over cv::VideoCapture that opens with timeouts
// (OpenCV's CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC, which
// gocv v0.31 does not expose) and collects FFmpeg's error messages for the
// calling thread, so that a failed open says why.
#ifndef FACEWATCH_CAPTURE_H
#define FACEWATCH_CAPTURE_H
#ifdef __cplusplus
extern "C" {
#endif

typedef void* fw_capture;

// fw_capture_open opens url with the FFmpeg backend. On failure it returns
// NULL; *err (free with free()) holds FFmpeg's or OpenCV's messages, or is
// NULL.
fw_capture fw_capture_open(const char* url, int open_ms, int read_ms, char** err);
// fw_capture_read decodes the next frame into mat (a cv::Mat*). It returns 1
// on success, 0 at the end of the stream or on error (*err as above).
int fw_capture_read(fw_capture cap, void* mat, char** err);
double fw_capture_get(fw_capture cap, int prop);
void fw_capture_close(fw_capture cap);

#ifdef __cplusplus
}
#endif
#endif
