/* SPDX-License-Identifier: MIT */
/*
 * date.c - HTTP-date (RFC 9110 5.6.7): written as IMF-fixdate, read in all three forms.
 * No locale, no strptime: the names are fixed English and the layout is exact.
 */
#include <string.h>

#include "http/http.h"

static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static void two(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

void sp_http_date_format(time_t t, char *out)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
		memset(&tm, 0, sizeof(tm)); /* out of range: never from a real clock or file */
	int year = tm.tm_year + 1900;
	memcpy(out, days[tm.tm_wday % 7], 3);
	memcpy(out + 3, ", ", 2);
	two(out + 5, tm.tm_mday);
	out[7] = ' ';
	memcpy(out + 8, months[tm.tm_mon % 12], 3);
	out[11] = ' ';
	two(out + 12, year / 100);
	two(out + 14, year % 100);
	out[16] = ' ';
	two(out + 17, tm.tm_hour);
	out[19] = ':';
	two(out + 20, tm.tm_min);
	out[22] = ':';
	two(out + 23, tm.tm_sec);
	memcpy(out + 25, " GMT", 5); /* with the NUL */
}

/* Fixed-width decimal at p[0..n); -1 unless all digits (a leading space allowed). */
static int num(const char *p, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == ' ' && i == 0 && n > 1)
			continue;
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static int month(const char *p)
{
	for (int i = 0; i < 12; i++)
		if (!memcmp(p, months[i], 3))
			return i;
	return -1;
}

/* "HH:MM:SS" */
static bool clock_time(const char *p, struct tm *tm)
{
	if (p[2] != ':' || p[5] != ':')
		return false;
	tm->tm_hour = num(p, 2);
	tm->tm_min = num(p + 3, 2);
	tm->tm_sec = num(p + 6, 2);
	return tm->tm_hour >= 0 && tm->tm_hour < 24 && tm->tm_min >= 0 && tm->tm_min < 60 &&
	       tm->tm_sec >= 0 && tm->tm_sec <= 60;
}

time_t sp_http_date_parse(struct sp_http_str s)
{
	struct tm tm;
	const char *p = s.p;
	memset(&tm, 0, sizeof(tm));

	if (s.len < 24)
		return -1;
	if (s.len == 29 && p[3] == ',') { /* Sun, 06 Nov 1994 08:49:37 GMT */
		if (p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
		    memcmp(p + 25, " GMT", 4) || p[5] == ' ')
			return -1;
		tm.tm_mday = num(p + 5, 2);
		tm.tm_mon = month(p + 8);
		tm.tm_year = num(p + 12, 4) - 1900;
		if (!clock_time(p + 17, &tm))
			return -1;
	} else if (s.len == 24 && p[3] == ' ') { /* Sun Nov  6 08:49:37 1994 */
		if (p[7] != ' ' || p[10] != ' ' || p[19] != ' ')
			return -1;
		tm.tm_mon = month(p + 4);
		tm.tm_mday = num(p + 8, 2);
		tm.tm_year = num(p + 20, 4) - 1900;
		if (!clock_time(p + 11, &tm))
			return -1;
	} else { /* Sunday, 06-Nov-94 08:49:37 GMT */
		const char *c = memchr(p, ',', s.len < 10 ? s.len : 10);
		if (!c || s.len - (size_t)(c - p) != 24)
			return -1;
		const char *d = c + 2; /* "06-Nov-94 08:49:37 GMT" */
		if (c[1] != ' ' || d[2] != '-' || d[6] != '-' || d[9] != ' ' ||
		    memcmp(d + 18, " GMT", 4) || d[0] == ' ')
			return -1;
		tm.tm_mday = num(d, 2);
		tm.tm_mon = month(d + 3);
		int yy = num(d + 7, 2);
		/* RFC 9110: a two-digit year more than 50 years ahead is in the past century */
		tm.tm_year = yy < 0 ? -1 : (yy < 70 ? yy + 100 : yy);
		if (!clock_time(d + 10, &tm))
			return -1;
	}
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_mon < 0 || tm.tm_year < 0)
		return -1;
	return timegm(&tm);
}
