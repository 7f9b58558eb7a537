#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
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

// OpenCV 4.6 has no per-capture way to pass FFmpeg options: it reads
// OPENCV_FFMPEG_CAPTURE_OPTIONS at the start of each open and, when the
// variable is unset, asks for RTSP over TCP. Each open therefore sets that
// variable for its duration under a lock (OpenCV serialises opens anyway, see
// openGate in capture.go) and restores the caller's value afterwards. Ours
// are: the RTSP transport, and a 1.5 s analyzeduration instead of FFmpeg's
// 5 s, so that a camera sending 5 fps opens in about a second and a half
// rather than five. An operator's own options in the variable come after
// ours and win.
static std::mutex env_mu;

static cv::VideoCapture* open_locked(const char* url, int open_ms, int read_ms) {
	std::vector<int> params = {
		cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
		cv::CAP_PROP_READ_TIMEOUT_MSEC, read_ms,
	};
	return new cv::VideoCapture(std::string(url), cv::CAP_FFMPEG, params);
}

fw_capture fw_capture_open(const char* url, int udp, int open_ms, int read_ms, char** err) {
	collect c;
	*err = nullptr;
	cv::VideoCapture* cap = nullptr;
	try {
		std::lock_guard<std::mutex> lock(env_mu);
		const char* prev = getenv("OPENCV_FFMPEG_CAPTURE_OPTIONS");
		std::string saved = prev ? prev : "";
		std::string opts = udp ? "rtsp_transport;udp" : "rtsp_transport;tcp";
		opts += "|analyzeduration;1500000";
		if (prev && *prev) {
			opts += "|";
			opts += saved;
		}
		setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", opts.c_str(), 1);
		try {
			cap = open_locked(url, open_ms, read_ms);
		} catch (...) {
			if (prev) setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", saved.c_str(), 1); else unsetenv("OPENCV_FFMPEG_CAPTURE_OPTIONS");
			throw;
		}
		if (prev) setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", saved.c_str(), 1); else unsetenv("OPENCV_FFMPEG_CAPTURE_OPTIONS");
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
