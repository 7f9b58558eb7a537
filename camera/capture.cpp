#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

extern "C" {
#include <libavutil/log.h>
}

#include "capture.h"

// The messages FFmpeg logs on this thread during one call, or nullptr
// outside a call. FFmpeg's own worker threads log nowhere.
static thread_local std::string* tl_messages = nullptr;

static void fw_av_log(void* avcl, int level, const char* fmt, va_list vl) {
	(void)avcl;
	if (tl_messages == nullptr || level > AV_LOG_ERROR) {
		return;
	}
	char line[512];
	vsnprintf(line, sizeof line, fmt, vl);
	std::string s(line);
	while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
		s.pop_back();
	}
	if (s.empty()) {
		return;
	}
	if (tl_messages->size() < 2048) {
		if (!tl_messages->empty()) {
			tl_messages->append("; ");
		}
		tl_messages->append(s);
	}
}

struct collect {
	std::string messages;
	collect() {
		av_log_set_callback(fw_av_log);
		tl_messages = &messages;
	}
	~collect() { tl_messages = nullptr; }
	char* take() {
		if (messages.empty()) {
			return nullptr;
		}
		return strdup(messages.c_str());
	}
};

fw_capture fw_capture_open(const char* url, int open_ms, int read_ms, char** err) {
	collect c;
	*err = nullptr;
	cv::VideoCapture* cap = nullptr;
	try {
		std::vector<int> params = {
			cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
			cv::CAP_PROP_READ_TIMEOUT_MSEC, read_ms,
		};
		cap = new cv::VideoCapture(std::string(url), cv::CAP_FFMPEG, params);
		if (!cap->isOpened()) {
			delete cap;
			cap = nullptr;
		}
	} catch (const std::exception& e) {
		delete cap;
		cap = nullptr;
		c.messages.append(e.what());
	}
	*err = c.take();
	return cap;
}

int fw_capture_read(fw_capture cap, void* mat, char** err) {
	collect c;
	*err = nullptr;
	int ok = 0;
	try {
		ok = static_cast<cv::VideoCapture*>(cap)->read(*static_cast<cv::Mat*>(mat)) ? 1 : 0;
	} catch (const std::exception& e) {
		c.messages.append(e.what());
		ok = 0;
	}
	if (!ok) {
		*err = c.take();
	}
	return ok;
}

double fw_capture_get(fw_capture cap, int prop) {
	try {
		return static_cast<cv::VideoCapture*>(cap)->get(prop);
	} catch (const std::exception&) {
		return 0;
	}
}

void fw_capture_close(fw_capture cap) {
	delete static_cast<cv::VideoCapture*>(cap);
}
